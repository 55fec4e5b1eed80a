"""Ready hypothesis state machines for any System class or system tree.

`lifecycle_test(Trainer)` builds a `RuleBasedStateMachine` subclass with one rule
per trigger and system (named after them: ``activate``, ``start_loader``), whose
precondition is the lifecycle table, plus a rule that fires a refused trigger and a
first step that plays a legal sequence sampled from the enumerated skeleton.  Every
step runs through the checked `Harness`.  Its ``TestCase`` runs the state machine
(data, guards, interleavings), the exhaustive explorer (certainty on the skeleton)
and the exhaustive check of every parent's derivation policy, so one line in a test
module covers all three.
"""

from __future__ import annotations

import functools
import re
import sys
import unittest
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck
from hypothesis import settings as Settings  # noqa: N812 - hypothesis's own name for the class
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .._system import System
from ._explore import Exploration, explore
from ._policy import PolicyReport, check_policy
from ._script import Harness, Invariant, InvariantViolation, Step, attach_script
from ._strategies import Arguments, legal_sequences, trigger_arguments

__all__ = ["SystemMachine", "lifecycle_test"]

T = TypeVar("T")
F = TypeVar("F", bound=Invariant)


class SystemMachine(RuleBasedStateMachine):
    """Base of the state machines `lifecycle_test` builds.

    Each example builds a fresh tree on its own event loop (``self.harness``); the
    generated rules fire triggers through ``self.fire(step)``, which settles the tree
    and checks every invariant.  Subclass to add rules (use ``self.fire`` for
    triggers and ``self.act(coro, "what")`` for anything else) or hypothesis
    ``@invariant()`` methods; or register plain invariants with
    ``@Machine.invariant``, which the explorer checks too.
    """

    target: ClassVar[Callable[[], System]]
    arguments: ClassVar[Mapping[str, Any]] = {}
    user_invariants: ClassVar[tuple[Invariant, ...]] = ()
    max_depth: ClassVar[int | None] = None
    max_triggers: ClassVar[int] = 50_000
    history: ClassVar[bool | None] = None
    test_settings: ClassVar[Settings]

    def __init__(self) -> None:
        super().__init__()
        self.harness = Harness(type(self).target, invariants=type(self).user_invariants)

    # -- for rules -------------------------------------------------------------------------

    @property
    def system(self) -> System:
        """The root of this example's tree."""
        return self.harness.root

    def fire(self, step: Step) -> bool:
        """Fire `step`, settle, check every invariant; True if the tree moved."""
        return self.harness.fire(step)

    def act(self, action: Awaitable[T], description: str) -> T:
        """Run a non-trigger action on the machine's loop, settle and check."""
        return self.harness.act(action, description)

    def allows(self, path: str, trigger: str) -> bool:
        node = self.harness.nodes[path]
        return trigger in node.lifecycle.allowed(node.state)

    def teardown(self) -> None:
        # Called from hypothesis's `finally`: a failing run is visible here, and any
        # exception (a user's @invariant, hypothesis's own) gets the replay script.
        failing = sys.exc_info()[1]
        if failing is not None and not isinstance(failing, InvariantViolation):
            attach_script(failing, self.harness.script(str(failing)))
        self.harness.close()

    # -- registration ------------------------------------------------------------------------

    @classmethod
    def invariant(cls, fn: F) -> F:
        """Decorator: check ``fn(root)`` after every step, here and in the explorer.

        `fn` fails by raising AssertionError or returning False.
        """
        cls.user_invariants = (*cls.user_invariants, fn)
        return fn

    @classmethod
    def explore(cls) -> Exploration:
        """Run the exhaustive explorer on this machine's target, with its arguments and invariants."""
        return explore(
            cls.target,
            cls.max_depth,
            arguments=cls.arguments,
            invariants=cls.user_invariants,
            history=cls.history,
            max_triggers=cls.max_triggers,
        )

    @classmethod
    def check_policies(cls) -> list[PolicyReport]:
        """`check_policy` for each derivation policy of the tree's parents, with their lifecycles.

        Exhaustive over children that move freely, so stronger than what one tree can
        reach: a policy that passes is safe in every tree.
        """
        seen: dict[tuple[int, int], PolicyReport] = {}
        for node in cls.target().walk():
            if node.subsystems and (id(node.policy), id(node.lifecycle)) not in seen:
                seen[id(node.policy), id(node.lifecycle)] = check_policy(node.policy, node.lifecycle)
        return list(seen.values())

    @classmethod
    @functools.cache
    def _to_test_case(cls) -> type[unittest.TestCase]:  # type: ignore[override, unused-ignore]
        machine = cls

        class TestCase(unittest.TestCase):
            settings = machine.test_settings

            def test_state_machine(self) -> None:
                run_state_machine_as_test(machine, settings=self.settings)  # type: ignore[no-untyped-call, unused-ignore]

            def test_exploration(self) -> None:
                machine.explore().check()

            def test_policies(self) -> None:
                for report in machine.check_policies():
                    assert report.ok, str(report)

            test_state_machine.is_hypothesis_test = True  # type: ignore[attr-defined]
            test_state_machine._hypothesis_state_machine_class = machine  # type: ignore[attr-defined]

        TestCase.__name__ = f"{cls.__name__}.TestCase"
        TestCase.__qualname__ = f"{cls.__qualname__}.TestCase"
        TestCase.__module__ = cls.__module__
        return TestCase


_NOT_WORD = re.compile(r"\W")


def _rule_name(trigger: str, path: str, taken: set[str]) -> str:
    name = f"{trigger}_{_NOT_WORD.sub('_', path)}" if path else trigger
    if hasattr(SystemMachine, name) or not name.isidentifier():
        name = f"fire_{name}"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _trigger_rule(
    name: str, trigger: str, path: str, kwargs: st.SearchStrategy[Mapping[str, Any]] | None
) -> Callable[..., None]:
    # two shapes, so that hypothesis prints ``state.start()`` rather than ``state.start(kwargs={})``
    def fire_plain(self: SystemMachine) -> None:
        self.fire(Step(trigger, {}, path))

    def fire_with(self: SystemMachine, kwargs: Mapping[str, Any] | None = None) -> None:
        self.fire(Step(trigger, kwargs or {}, path))

    fire: Callable[..., None] = fire_plain if kwargs is None else fire_with
    where = repr(path) if path else "the root"
    fire.__name__ = fire.__qualname__ = name
    fire.__doc__ = f"Fire {trigger!r} at {where} when its lifecycle allows it."
    ruled = rule(kwargs=kwargs)(fire) if kwargs is not None else rule()(fire)
    return precondition(lambda self: self.allows(path, trigger))(ruled)


def _default_settings(nodes: int) -> Settings:
    # A lifecycle closes within a dozen steps; a tree needs more to mix its systems.
    return Settings(
        deadline=None,
        stateful_step_count=20 if nodes == 1 else 40,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def lifecycle_test(
    target: Callable[[], System],
    *,
    arguments: Arguments | None = None,
    invariants: Sequence[Invariant] = (),
    max_depth: int | None = None,
    max_triggers: int = 50_000,
    history: bool | None = None,
    prefix_len: int = 8,
    settings: Settings | None = None,
) -> type[SystemMachine]:
    """A state machine (and its ``TestCase``) testing the System class or tree `target` builds.

    ``TestTrainer = lifecycle_test(Trainer).TestCase`` runs three tests: the state
    machine (hypothesis: random rules, data, shrinking), the exhaustive explorer
    (`explore` to `max_depth` or 12, raised by ``--statesys-depth``) and `check_policy`
    for the derivation policy of every parent in the tree.

    `target` is a System class (built with no arguments) or a callable returning a
    fresh tree, the same shape each time.  `arguments` gives, per trigger, a
    strategy of keyword arguments or a list of alternatives (the explorer tries
    every listed alternative; see `trigger_arguments` for the defaults).
    `invariants` are callables ``fn(root)`` checked after every step.  `max_depth`,
    `max_triggers` and `history` are passed to `explore`.  The machine
    starts with a legal sequence of up to `prefix_len` triggers played at the root.
    `settings` replace the defaults (no deadline, 20 steps for one system, 40 for a tree).
    """
    sample = target()
    if not isinstance(sample, System):
        raise InvalidArgument(f"lifecycle_test: {target!r} must build a statesys.System, it built {sample!r}")
    prefix = len(sample.path) + 1
    nodes = [(node.path[prefix:], node) for node in sample.walk()]
    triggers = {t: None for _, node in nodes for t in node.lifecycle.triggers}
    given = dict(arguments or {})
    if unknown := sorted(set(given) - set(triggers)):
        raise InvalidArgument(
            f"lifecycle_test: arguments name unknown triggers {unknown} (the tree has {list(triggers)})"
        )
    namespace: dict[str, Any] = {
        "target": staticmethod(target),
        "arguments": given,
        "user_invariants": tuple(invariants),
        "max_depth": max_depth,
        "max_triggers": max_triggers,
        "history": history,
        "test_settings": settings if settings is not None else _default_settings(len(nodes)),
    }
    taken: set[str] = set()
    strategies: dict[str, st.SearchStrategy[Mapping[str, Any]]] = {}
    for path, node in nodes:
        args = trigger_arguments(
            node.lifecycle, {k: v for k, v in given.items() if k in node.lifecycle.triggers}
        )
        strategies.update(args)
        for trigger in node.lifecycle.triggers:
            takes = trigger in given or trigger in ("disable", "terminate")
            name = _rule_name(trigger, path, taken)
            namespace[name] = _trigger_rule(name, trigger, path, args[trigger] if takes else None)

    illegal_triggers = {path: node.lifecycle.triggers for path, node in nodes}
    # one strategy per set of refused (system, trigger) pairs: building and validating
    # a fresh sampled_from on every step costs more than firing the trigger
    refused: dict[tuple[tuple[str, str], ...], st.SearchStrategy[tuple[str, str]]] = {}

    @rule(data=st.data())
    def illegal_trigger(self: SystemMachine, data: st.DataObject) -> None:
        """Fire a trigger the table refuses where it is fired: it must change nothing."""
        pairs = tuple(
            (path, t)
            for path, node in self.harness.nodes.items()
            for t in illegal_triggers[path]
            if t not in node.lifecycle.allowed(node.state)
        )
        if not pairs:
            return
        choose = refused.get(pairs)
        if choose is None:
            choose = refused[pairs] = st.sampled_from(pairs)
        path, trigger = data.draw(choose, label="illegal")
        kwargs = data.draw(strategies[trigger], label="kwargs")
        self.fire(Step(trigger, kwargs, path, illegal=True))

    namespace["illegal_trigger"] = illegal_trigger

    if prefix_len > 0:
        root_args = {k: v for k, v in given.items() if k in sample.lifecycle.triggers}

        @initialize(prefix=legal_sequences(sample.lifecycle, prefix_len, min_len=0, arguments=root_args))
        def play(self: SystemMachine, prefix: list[Step]) -> None:
            """Start from a legal sequence at the root, as far as guards and hooks let it go."""
            for step in prefix:
                if not self.allows(step.path, step.trigger):
                    break
                self.fire(step)

        namespace["play"] = play

    name = f"{getattr(target, '__name__', 'System')}Machine"
    machine: type[SystemMachine] = type(name, (SystemMachine,), namespace)
    machine.__qualname__ = name
    machine.__module__ = getattr(target, "__module__", __name__)
    return machine
