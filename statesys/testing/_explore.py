"""Bounded exhaustive exploration of a small tree: every reachable configuration.

Breadth first from a fresh tree: for each configuration, the kit fires every trigger
the table refuses at every system (each must be refused, changing nothing), then
every trigger it allows, with every listed argument alternative, each on a fresh
replay of the prefix that led there.  A configuration is every system's state plus
the hook facts the invariants read and, for a single system, the set of transitions
it took (so that "resumed after an earlier disable/enable" is not merged into
"resumed").  Breadth first means the first failure found has a shortest trace.

Systems must be deterministic for replays to agree: async or inline hooks, no
wall-clock races.  A replay that reaches another configuration is reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Final

import attrs

from .._system import System
from ._script import Harness, Invariant, InvariantViolation, Step, render_script

__all__ = ["DEFAULT_DEPTH", "Counterexample", "Exploration", "default_depth", "explore"]

#: Exploration depth when neither the call nor ``--statesys-depth`` says otherwise.
DEFAULT_DEPTH: Final = 12
#: Set by the pytest plugin from ``--statesys-depth``.
_depth_option: int | None = None
_CAUSE: Final = "maintenance"


def default_depth() -> int:
    """The depth `explore` uses when given none: 12, or ``--statesys-depth`` if deeper."""
    return max(DEFAULT_DEPTH, _depth_option or 0)


def _effective_depth(max_depth: int | None) -> int:
    """``--statesys-depth`` raises every depth (a deeper CI run), and never lowers one."""
    if max_depth is None:
        return default_depth()
    return max(max_depth, _depth_option or 0)


def explore_choices(
    triggers: Sequence[str], arguments: Mapping[str, Any] | None
) -> dict[str, list[dict[str, Any]]]:
    """The argument alternatives the explorer tries per trigger.

    Lists given in `arguments` are used as they are; strategies (for the state
    machine) are skipped here in favour of the defaults: a cause for ``disable``,
    ``terminate`` with and without a cause, nothing for the others.
    """
    given = dict(arguments or {})
    if unknown := sorted(set(given) - set(triggers)):
        raise ValueError(
            f"arguments name triggers the tree does not have: {unknown} (it has {list(triggers)})"
        )
    out: dict[str, list[dict[str, Any]]] = {}
    for trigger in triggers:
        value = given.get(trigger)
        if isinstance(value, (list, tuple)) and value:
            out[trigger] = [dict(v) for v in value]
        elif trigger == "disable":
            out[trigger] = [{"cause": _CAUSE}]
        elif trigger == "terminate":
            out[trigger] = [{}, {"cause": "operator request"}]
        else:
            out[trigger] = [{}]
    return out


@attrs.frozen
class Counterexample:
    """A shortest sequence of steps that breaks an invariant, and how to replay it."""

    message: str
    steps: tuple[Step, ...]
    script: str

    def __str__(self) -> str:
        trace = ", ".join(map(str, self.steps)) or "(no step)"
        return f"{self.message}\n  after: {trace}\n\nreplay:\n{self.script}"


@attrs.frozen
class Exploration:
    """What `explore` visited, and the counterexample if it found one."""

    max_depth: int
    depth: int  #: every sequence of up to this many triggers was tried
    complete: bool  #: True if no new configuration was left unexpanded: all reachable ones were visited
    truncated: bool  #: True if the trigger budget ran out before `max_depth`
    configurations: int
    steps: int  #: triggers fired, replays included
    states: frozenset[str]
    transitions: frozenset[tuple[str, str, str]]  #: (source, trigger, dest) observed
    declared_states: frozenset[str]
    declared_transitions: frozenset[tuple[str, str, str]]
    counterexample: Counterexample | None = None

    @property
    def ok(self) -> bool:
        return self.counterexample is None

    @property
    def missing_states(self) -> frozenset[str]:
        return self.declared_states - self.states

    @property
    def missing_transitions(self) -> frozenset[tuple[str, str, str]]:
        return self.declared_transitions - self.transitions

    def check(self) -> Exploration:
        """Raise `InvariantViolation` (with the replay script) if a counterexample was found."""
        found = self.counterexample
        if found is not None:
            raise InvariantViolation(found.message, found.steps, found.script)
        return self

    def summary(self) -> str:
        states, transitions = self.states & self.declared_states, self.transitions & self.declared_transitions
        cover = (
            f"states {len(states)}/{len(self.declared_states)}, "
            f"transitions {len(transitions)}/{len(self.declared_transitions)}"
        )
        if self.complete:
            reach = "all reachable"
        elif self.truncated:
            reach = f"every sequence up to depth {self.depth}; stopped by the trigger budget"
        else:
            reach = f"every sequence up to depth {self.depth}"
        head = f"{self.configurations} configurations ({reach}), {self.steps} triggers fired; {cover}"
        if self.missing_transitions:
            missing = ", ".join(f"{s} --{t}--> {d}" for s, t, d in sorted(self.missing_transitions))
            head += f"; never taken: {missing}"
        return head

    def __str__(self) -> str:
        if self.counterexample is None:
            return f"ok: {self.summary()}"
        return f"{self.counterexample}\n\n({self.summary()})"


@attrs.define
class _Frontier:
    steps: tuple[Step, ...]
    key: Hashable


def explore(
    target: Callable[[], System],
    max_depth: int | None = None,
    *,
    arguments: Mapping[str, Any] | None = None,
    invariants: Sequence[Invariant] = (),
    history: bool | None = None,
    max_triggers: int = 50_000,
) -> Exploration:
    """Visit every configuration of the tree `target` builds, up to `max_depth` triggers deep.

    `target` is a System class or any callable building a fresh tree (it is called
    once per replay).  `arguments` lists, per trigger, the keyword-argument
    alternatives to try (``{"activate": [{}, {"fail": True}]}``).  `invariants` are
    checked after every step, as the built-in ones (DESIGN §3–4).  With `history`
    configurations that took different transitions stay apart; by default it is on
    for a single system (a few dozen configurations) and off for a tree, where the
    histories of the systems multiply.  Exploration stops once `max_triggers` triggers
    were fired (replays included; about a tenth of a millisecond each), after the
    configuration being expanded: `Exploration.depth` says how deep it got.
    Returns an `Exploration`; call ``.check()`` to raise on a counterexample.
    """
    depth_limit = _effective_depth(max_depth)
    loop = asyncio.new_event_loop()
    try:
        return _Explorer(target, depth_limit, arguments, invariants, history, max_triggers, loop).run()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


class _Explorer:
    def __init__(
        self,
        target: Callable[[], System],
        max_depth: int,
        arguments: Mapping[str, Any] | None,
        invariants: Sequence[Invariant],
        history: bool | None,
        max_triggers: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.target = target
        self.max_depth = max_depth
        self.invariants = tuple(invariants)
        self.history = bool(history)
        self.auto_history = history is None
        self.max_triggers = max_triggers
        self.loop = loop
        self.fired = 0
        self.states: set[str] = set()
        self.transitions: set[tuple[str, str, str]] = set()
        self.declared_states: set[str] = set()
        self.declared_transitions: set[tuple[str, str, str]] = set()
        self.arguments = arguments
        self.choices: dict[str, list[dict[str, Any]]] = {}

    def harness(self) -> Harness:
        return Harness(self.target, invariants=self.invariants, loop=self.loop)

    def replay(self, entry: _Frontier) -> Harness:
        harness = self.harness()
        try:
            harness.replay(entry.steps)
            self.fired += len(entry.steps)
            if harness.key(history=self.history) != entry.key:
                harness.fail(
                    "replaying these steps reached another configuration than the first time: "
                    "explore needs deterministic systems (no thread mains or timing races)"
                )
        except BaseException:
            harness.close()
            raise
        return harness

    def note(self, harness: Harness) -> None:
        for event in harness.observer.events:
            self.transitions.add((event.source, event.trigger, event.dest))
            self.states.add(event.dest)

    def result(
        self,
        configurations: int,
        depth: int,
        complete: bool,
        found: Counterexample | None,
        truncated: bool = False,
    ) -> Exploration:
        return Exploration(
            max_depth=self.max_depth,
            depth=depth,
            complete=complete,
            truncated=truncated,
            configurations=configurations,
            steps=self.fired,
            states=frozenset(self.states),
            transitions=frozenset(self.transitions),
            declared_states=frozenset(self.declared_states),
            declared_transitions=frozenset(self.declared_transitions),
            counterexample=found,
        )

    def counterexample(
        self, exc: InvariantViolation, steps: tuple[Step, ...], refused_last: bool
    ) -> Counterexample:
        refused = [False] * (len(steps) - 1) + [refused_last]
        script = render_script(self.target, steps, refused=refused, failure=exc.message)
        return Counterexample(exc.message, steps, script)

    def run(self) -> Exploration:
        first = self.harness()
        try:
            triggers: dict[str, None] = {}
            for node in first.nodes.values():
                lc = node.lifecycle
                triggers.update(dict.fromkeys(lc.triggers))
                self.declared_states.update(lc.states)
                self.declared_transitions.update((r.source, r.trigger, r.dest) for r in lc.routes())
                self.states.add(node.state)
            self.choices = explore_choices(tuple(triggers), self.arguments)
            if self.auto_history:
                self.history = len(first.nodes) == 1
            try:
                first.check()
            except InvariantViolation as exc:
                return self.result(1, 0, False, self.counterexample(exc, (), False))
            start = _Frontier((), first.key(history=self.history))
        finally:
            first.close()
        seen = {start.key}
        frontier = [start]
        depth = 0  # every sequence of up to `depth` triggers has been tried
        while frontier and depth < self.max_depth:
            nxt: list[_Frontier] = []
            for entry in frontier:
                found = self.expand(entry, seen, nxt)
                if found is not None:
                    return self.result(len(seen), depth, False, found)
                if self.fired >= self.max_triggers:
                    return self.result(len(seen), depth, False, None, truncated=True)
            depth += 1
            frontier = nxt
        return self.result(len(seen), depth, not frontier, None)

    def expand(self, entry: _Frontier, seen: set[Hashable], nxt: list[_Frontier]) -> Counterexample | None:
        try:
            harness: Harness | None = self.replay(entry)
        except InvariantViolation as exc:
            return self.counterexample(exc, entry.steps, False)
        assert harness is not None
        try:
            # every refused trigger on the one replay: a correct refusal changes nothing
            for path, node in harness.nodes.items():
                allowed = node.lifecycle.allowed(node.state)
                for trigger in node.lifecycle.triggers:
                    if trigger in allowed:
                        continue
                    step = Step(trigger, self.choices[trigger][0], path, illegal=True)
                    self.fired += 1
                    try:
                        harness.fire(step)
                    except InvariantViolation as exc:
                        return self.counterexample(exc, (*entry.steps, step), True)
            actions = [
                Step(trigger, kwargs, path)
                for path, node in harness.nodes.items()
                for trigger in node.lifecycle.allowed(node.state)
                for kwargs in self.choices[trigger]
            ]
            for action in actions:
                if harness is None:
                    try:
                        harness = self.replay(entry)
                    except InvariantViolation as exc:
                        return self.counterexample(exc, entry.steps, False)
                self.fired += 1
                try:
                    harness.fire(action)
                except InvariantViolation as exc:
                    return self.counterexample(exc, (*entry.steps, action), harness.refused[-1])
                self.note(harness)
                key = harness.key(history=self.history)
                if key not in seen:
                    seen.add(key)
                    nxt.append(_Frontier((*entry.steps, action), key))
                harness.close()
                harness = None
            return None
        finally:
            if harness is not None:
                harness.close()
