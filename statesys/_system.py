"""The System: a long-running part with a declared lifecycle, hooks and subsystems.

State lives on the instance (``_state``); the class holds the compiled lifecycle.
A system with subsystems does not choose its state: it derives it from per-state
counts of its children, its own hooks counting as one more child (its "own part").
Everything here runs on one asyncio loop, the single writer of all state.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
import traceback
import types
import typing
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

import attrs

from ._context import Context
from ._events import LOGGER, Event
from ._hierarchy import FAIL_FAST, DerivationPolicy, PolicyReport, check_policy
from ._lifecycle import DEFAULT_LIFECYCLE, Lifecycle, Route
from .exceptions import (
    BringUpFailed,
    ConfigError,
    DefinitionError,
    DerivationError,
    TransitionNotAllowed,
)
from .runtime._runner import EXECUTORS, Runner, make_runner

__all__ = ["Restart", "System", "run"]

_EMPTY: Final[Mapping[str, Any]] = {}
_HOOKS: Final = ("prepare", "main", "shutdown", "teardown")
#: Triggers the runtime itself fires; a lifecycle attached to a System must have them.
_RUNTIME_TRIGGERS: Final = ("activate", "start", "complete", "terminate")
_INFO: Final = logging.INFO


@attrs.frozen
class Restart:
    """Restart policy for a failing main, as OTP's intensity/period.

    At most `limit` restarts within `within` seconds; the n-th consecutive restart
    waits ``min(backoff * 2**(n-1), max_backoff)`` seconds.  Past the limit the
    system is terminated with the last failure as its cause.
    """

    limit: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    within: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    backoff: float = attrs.field(default=0.05, validator=attrs.validators.ge(0))
    max_backoff: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        if self.max_backoff < self.backoff:
            raise ValueError(
                f"Restart: max_backoff ({self.max_backoff}) must be >= backoff ({self.backoff}); "
                "raise max_backoff or lower backoff"
            )


def _describe(exc: BaseException) -> str:
    remote = getattr(exc, "remote_traceback", None)
    if isinstance(remote, str) and remote:
        return remote.rstrip()
    return "".join(traceback.format_exception(exc)).rstrip()


# -- configuration checks derived from annotations ------------------------------------------


def _type_checker(hint: Any) -> tuple[Callable[[Any], bool], str] | None:
    """A predicate and a description for a runtime-checkable annotation, or None."""
    origin = typing.get_origin(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return None
    if hint is float:
        return (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)), "a number (float)"
    if hint is int:
        return (lambda v: isinstance(v, int) and not isinstance(v, bool)), "an int"
    if origin is typing.Literal:
        options = typing.get_args(hint)
        return (lambda v: v in options), "one of " + ", ".join(map(repr, options))
    if origin in (typing.Union, types.UnionType):
        parts = [_type_checker(a) for a in typing.get_args(hint)]
        if any(p is None for p in parts):
            return None
        checks = [p for p in parts if p is not None]
        return (lambda v: any(c(v) for c, _ in checks)), " or ".join(d for _, d in checks)
    if origin is not None and isinstance(origin, type):
        return (lambda v: isinstance(v, origin)), f"a {origin.__name__}"
    if hint is type(None):
        return (lambda v: v is None), "None"
    if isinstance(hint, type):
        return (lambda v: isinstance(v, hint)), f"a {hint.__name__}"
    return None


def _config_checks(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """attrs field transformer: validate each config field against its annotation."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable forward references: validate what resolves
        hints = {}
    out = []
    for field in fields:
        if field.name.startswith("_") or field.name not in hints or field.inherited:  # type: ignore[attr-defined]
            out.append(field)
            continue
        checker = _type_checker(hints[field.name])
        if checker is None:
            out.append(field)
            continue
        check, wanted = checker

        def validate(
            inst: Any, attr: attrs.Attribute[Any], value: Any, check: Any = check, wanted: str = wanted
        ) -> None:
            if not check(value):
                raise ConfigError(
                    f"{type(inst).__name__}({inst.name!r})",
                    attr.name,
                    f"expected {wanted}, got {value!r} ({type(value).__name__}); pass {wanted}",
                )

        validators = [validate] + ([field.validator] if field.validator else [])
        out.append(field.evolve(validator=attrs.validators.and_(*validators)))
    return out


def _check_base(inst: System, attr: attrs.Attribute[Any], value: Any) -> None:
    name = attr.name
    if name == "executor" and value not in EXECUTORS:
        raise ConfigError(inst.name, name, f"expected one of {list(EXECUTORS)}, got {value!r}")
    if name == "suspend_mode" and value not in ("cooperative", "signal"):
        raise ConfigError(inst.name, name, f"expected 'cooperative' or 'signal', got {value!r}")
    if name == "grace" and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
        raise ConfigError(inst.name, name, f"expected a number of seconds >= 0, got {value!r}")
    if name == "restart" and value is not None and not isinstance(value, Restart):
        raise ConfigError(inst.name, name, f"expected statesys.Restart(...) or None, got {value!r}")
    if name == "name" and (not isinstance(value, str) or not value or "/" in value):
        raise ConfigError(type(inst).__name__, name, f"expected a non-empty name without '/', got {value!r}")


def _as_systems(value: typing.Iterable[System]) -> tuple[System, ...]:
    return tuple(value)


def _as_names(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


# -- the class ------------------------------------------------------------------------------


@typing.dataclass_transform(kw_only_default=True, field_specifiers=(attrs.field, attrs.Factory))
class SystemMeta(type):
    """Makes every System subclass an attrs class (slotted, keyword-only config) and checks it."""

    def __new__(
        mcls,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        lifecycle: Lifecycle | None = None,
        **kwargs: Any,
    ) -> SystemMeta:
        if "__attrs_attrs__" in namespace or not any(isinstance(b, SystemMeta) for b in bases):
            # attrs re-creating a slotted class, or System itself (decorated below)
            return super().__new__(mcls, name, bases, namespace, **kwargs)
        if lifecycle is not None:
            namespace["lifecycle"] = lifecycle
        problems = _class_problems(name, bases, namespace)
        if problems:
            raise DefinitionError(name, problems)
        _add_trigger_methods(namespace, namespace.get("lifecycle") or _inherited(bases, "lifecycle"))
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        # no on_setattr hooks: config is validated at construction, and a hook would
        # sit on every state write (40% of an awaited trigger)
        built: SystemMeta = attrs.define(
            cls,
            kw_only=True,
            eq=False,
            repr=False,
            on_setattr=attrs.setters.NO_OP,
            field_transformer=_config_checks,
        )
        _finish(built)
        return built


def _inherited(bases: tuple[type, ...], attr: str) -> Any:
    for base in bases:
        if hasattr(base, attr):
            return getattr(base, attr)
    return None


def _class_problems(name: str, bases: tuple[type, ...], ns: Mapping[str, Any]) -> list[str]:
    problems = []
    lifecycle = ns.get("lifecycle", _inherited(bases, "lifecycle"))
    if not isinstance(lifecycle, Lifecycle):
        problems.append(f"lifecycle: expected a statesys.Lifecycle, got {lifecycle!r}")
    else:
        if missing := [t for t in _RUNTIME_TRIGGERS if t not in lifecycle.triggers]:
            problems.append(
                f"{name}.lifecycle: triggers the runtime fires are missing: {missing} "
                "(extend statesys.DEFAULT_LIFECYCLE to keep them)"
            )
        if lifecycle.route(lifecycle.initial, "activate") is None and "activate" in lifecycle.triggers:
            problems.append(
                f"{name}.lifecycle: 'activate' must leave the initial state {lifecycle.initial!r}"
            )
    for hook in _HOOKS:
        if hook in ns and not callable(ns[hook]):
            problems.append(f"hooks must be methods: {hook} = {ns[hook]!r}")
    return problems


def _add_trigger_methods(ns: dict[str, Any], lifecycle: Lifecycle | None) -> None:
    """Give the class a coroutine method for each extra trigger of its lifecycle."""
    if lifecycle is None:
        return
    for trigger in lifecycle.triggers:
        if trigger in ns or hasattr(System, trigger):
            continue

        async def fire(self: System, /, __trigger: str = trigger, **kwargs: Any) -> str:
            return await self.trigger(__trigger, **kwargs)

        fire.__name__ = fire.__qualname__ = trigger
        fire.__doc__ = f"Fire the lifecycle's {trigger!r} trigger."
        ns[trigger] = fire


def _finish(cls: Any) -> None:
    cls._overrides = frozenset(h for h in _HOOKS if getattr(cls, h) is not getattr(System, h))


@attrs.define(eq=False, slots=True, on_setattr=attrs.setters.NO_OP)
class System(metaclass=SystemMeta):
    """A long-running part with a declared lifecycle.

    Subclass it and declare configuration as annotated fields (validated at
    construction); override the hooks you need: ``prepare(**kwargs)``,
    ``main(ctx)`` (sync or ``async def``), ``shutdown()``, ``teardown()``.
    Drive it with the trigger coroutines (``await s.activate()``, ``start``,
    ``suspend``, ``resume``, ``complete``, ``terminate``, ``disable(cause)``,
    ``enable``) or with ``await s.run()``.  A system given ``subsystems`` derives
    its state from theirs.
    """

    lifecycle: ClassVar[Lifecycle] = DEFAULT_LIFECYCLE
    _overrides: ClassVar[frozenset[str]] = frozenset()

    name: str = attrs.field(
        default=attrs.Factory(lambda self: type(self).__name__, takes_self=True),
        validator=_check_base,
        kw_only=False,
    )
    # a tuple at run time; annotated as a Sequence so that a list may be passed
    subsystems: Sequence[System] = attrs.field(default=(), converter=_as_systems, kw_only=True)
    executor: str = attrs.field(default="auto", kw_only=True, validator=_check_base)
    restart: Restart | None = attrs.field(default=None, kw_only=True, validator=_check_base)
    after: tuple[str, ...] = attrs.field(default=(), converter=_as_names, kw_only=True)
    suspend_mode: str = attrs.field(default="cooperative", kw_only=True, validator=_check_base)
    grace: float = attrs.field(default=5.0, kw_only=True, validator=_check_base)
    policy: DerivationPolicy = attrs.field(default=FAIL_FAST, kw_only=True)

    _state: str = attrs.field(init=False, default="initial")
    _cause: str | None = attrs.field(init=False, default=None)
    _parent: System | None = attrs.field(init=False, default=None)
    _listeners: list[Callable[[Event], None]] | None = attrs.field(init=False, default=None)
    _pending: str | None = attrs.field(init=False, default=None)
    _flags: int = attrs.field(init=False, default=0)
    _runner: Runner | None = attrs.field(init=False, default=None)
    _main: asyncio.Future[None] | None = attrs.field(init=False, default=None)
    _watcher: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    _closed: asyncio.Event | None = attrs.field(init=False, default=None)
    _restarts: deque[float] | None = attrs.field(init=False, default=None)
    # parents only: counts of children by state, own part's state, start layers
    _counts: dict[str, int] | None = attrs.field(init=False, default=None)
    _own: str = attrs.field(init=False, default="initial")
    _own_cause: str | None = attrs.field(init=False, default=None)
    _layers: tuple[tuple[System, ...], ...] = attrs.field(init=False, default=())
    _tasks: _Tasks | None = attrs.field(init=False, default=None)
    _inflight: asyncio.Future[None] | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._state = self._own = self.lifecycle.initial
        if self.subsystems:
            self._adopt(self.subsystems)

    # -- identity --------------------------------------------------------------------

    @property
    def state(self) -> str:
        """The current state, a plain string."""
        return self._state

    @property
    def cause(self) -> str | None:
        """Why the system is in its state (a traceback text or a reason), if it says."""
        return self._cause

    @property
    def parent(self) -> System | None:
        return self._parent

    @property
    def path(self) -> str:
        """The system's path from its root, e.g. ``"app/trainer"``."""
        names = [self.name]
        node = self._parent
        while node is not None:  # a loop: trees may be deeper than the recursion limit
            names.append(node.name)
            node = node._parent
        return "/".join(reversed(names))

    def _set_parent(self, parent: System | None) -> None:
        self._parent = parent

    @property
    def closed(self) -> bool:
        """True in a final state (completed, terminated): nothing leaves it."""
        return self._state in self.lifecycle.final_states

    @property
    def pid(self) -> int:
        """The pid of the process where this system's code runs."""
        runner = self._runner
        return runner.pid if runner is not None else os.getpid()

    def allowed(self) -> tuple[str, ...]:
        """Triggers with a route from the current state (guards not evaluated)."""
        return self.lifecycle.allowed(self._state)

    def walk(self) -> typing.Iterator[System]:
        """This system and all its descendants, depth first in declared order."""
        stack = [self]
        while stack:  # iterative: trees may be deeper than the recursion limit
            node = stack.pop()
            yield node
            stack.extend(reversed(node.subsystems))

    def __getitem__(self, path: str) -> System:
        """The descendant at `path` relative to this system (``app["trainer/loader"]``)."""
        node = self
        for part in path.split("/"):
            for child in node.subsystems:
                if child.name == part:
                    node = child
                    break
            else:
                names = [c.name for c in node.subsystems]
                raise KeyError(f"{node.path} has no subsystem {part!r} (it has: {names})")
        return node

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} {self._state}>"

    # -- hooks (override what you need) ------------------------------------------------

    def prepare(self, **kwargs: Any) -> Awaitable[None] | None:
        """Gather what running needs; raising leaves the system disabled with the error as cause."""

    def main(self, ctx: Context) -> Awaitable[None] | None:
        """The system's work.  Without a main, a system runs until ``complete()`` is awaited."""

    def shutdown(self) -> Awaitable[None] | None:
        """Release what `prepare` took, after main returned (normal completion)."""

    def teardown(self) -> Awaitable[None] | None:
        """Release everything on termination; runs at most once, also if never prepared."""

    # -- observation -----------------------------------------------------------------

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call `listener(event)` for every transition in this system's subtree; returns an unsubscribe."""
        if self._listeners is None:
            self._listeners = []
        self._listeners.append(listener)
        _SUBSCRIBED[0] += 1

        def unsubscribe() -> None:
            if self._listeners is not None and listener in self._listeners:
                self._listeners.remove(listener)
                _SUBSCRIBED[0] -= 1

        return unsubscribe

    async def events(self) -> AsyncIterator[Event]:
        """Iterate over this subtree's events as they happen, until this system is closed."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        unsubscribe = self.subscribe(queue.put_nowait)
        try:
            while True:
                event = await queue.get()
                yield event
                if event.path == self.path and event.dest in self.lifecycle.final_states:
                    return
        finally:
            unsubscribe()

    def _emit(self, trigger: str, source: str, dest: str, cause: str | None) -> None:
        logging_on = LOGGER.isEnabledFor(_INFO)
        if not logging_on and not _SUBSCRIBED[0]:
            return  # nobody listens anywhere: build nothing, walk nothing
        node: System | None = self
        if not logging_on:
            while node is not None and not node._listeners:
                node = node._parent
            if node is None:
                return  # nobody listens: build nothing
        event = Event(time.time(), self.path, self.pid, trigger, source, dest, cause)
        if logging_on:
            LOGGER.info(
                "%s: %s -> %s (%s)", event.path, source, dest, trigger, extra={"statesys_event": event}
            )
        node = self
        while node is not None:
            for listener in node._listeners or ():
                try:
                    listener(event)
                except Exception:
                    LOGGER.exception("statesys: listener %r failed on %s", listener, event)
            node = node._parent

    # -- the state write, shared by every path -------------------------------------------

    def _commit(
        self,
        trigger: str,
        cause: str | None = None,
        kwargs: Mapping[str, Any] = _EMPTY,
        route: Route | None = None,
    ) -> None:
        """Move a leaf by `trigger`; `route` comes from `_begin` when a user fired it."""
        lifecycle = self.lifecycle
        source = self._state
        if route is None:  # fired by the runtime itself: the table decides, guards do not
            route = lifecycle.route(source, trigger)
            if route is None:
                raise lifecycle.refuse(self, trigger)
        lifecycle.apply(self, route, kwargs)
        self._cause = cause
        self._moved(trigger, source, route.dest, cause)
        for fn in route.after:
            fn(self, **kwargs)

    def _moved(self, trigger: str, source: str, dest: str, cause: str | None) -> None:
        """Record a move, then re-derive the ancestors, climbing while they change (a loop, not recursion)."""
        node = self
        while True:
            node._emit(trigger, source, dest, cause)
            if dest in node.lifecycle.final_states and node._closed is not None:
                node._closed.set()
            parent = node._parent
            if parent is None or node._flags & _UNCOUNTED:
                return
            step = parent._recount(node, source, dest)
            if step is None:
                return
            trigger, source, dest, cause = step
            node = parent

    # -- derivation (parents) --------------------------------------------------------

    def _check_policy(self) -> None:
        """A parent's policy must pass the exhaustive check with its lifecycle (once per pair)."""
        policy = self.policy
        if policy is FAIL_FAST and self.lifecycle is DEFAULT_LIFECYCLE:
            return
        owner = f"{type(self).__name__}({self.name!r}).policy"
        if not callable(getattr(policy, "derive", None)) or not isinstance(
            getattr(policy, "terminates_siblings", None), bool
        ):
            raise DefinitionError(
                owner,
                [
                    "expected a derivation policy (derive(counts, total) -> state, "
                    f"terminates_siblings: bool), got {policy!r}"
                ],
            )
        key = (id(policy), id(self.lifecycle))
        if key not in _POLICIES_CHECKED:
            report = check_policy(policy, self.lifecycle)
            _POLICIES_CHECKED[key] = (policy, self.lifecycle, report)
        report = _POLICIES_CHECKED[key][2]
        if not report.ok:
            raise DefinitionError(owner, [f"fails the exhaustive check: {report}"])

    def _adopt(self, children: Sequence[System]) -> None:
        self._check_policy()
        problems = _adoption_problems(children)
        self._layers = self._start_layers(children, problems)
        if problems:
            raise DefinitionError(f"{type(self).__name__}({self.name!r})", problems)
        counts = self._counts = {s: 0 for s in self.lifecycle.states}
        for child in children:
            child._set_parent(self)
            counts[child._state] = counts.get(child._state, 0) + 1
        counts[self._own] += 1
        self._state = self._derive()

    async def add(self, child: System) -> System:
        """Adopt `child` while this system is open; returns it.

        In a parent that is past ``initial`` the child is first brought up to the
        parent's level (activated; started if the parent runs; suspended if it is
        intermitted) and counts in the derivation only then, so adding never moves
        the parent.  A child that cannot be brought up is terminated and not added.
        """
        if self.closed or self._flags & _TERMINATING:
            raise TransitionNotAllowed(
                self.path,
                self._state,
                "add",
                (),
                detail=f"a {self._state} system takes no new subsystems; add to an open system",
            )
        if self._pending is not None:
            raise TransitionNotAllowed(
                self.path,
                self._state,
                "add",
                self.allowed(),
                detail=f"'add' must wait: '{self._pending}' is in progress; await it first",
            )
        problems = _adoption_problems([*self.subsystems, child], new=child)
        if not problems and (
            unknown := [a for a in child.after if all(c.name != a for c in self.subsystems)]
        ):
            problems.append(f"{child.name!r} starts after unknown siblings {unknown}")
        if problems:
            raise DefinitionError(f"{type(self).__name__}({self.name!r}).add", problems)
        if self._counts is None:  # a leaf becomes a parent: its own state is its own part now
            self._check_policy()
            self._counts = {s: 0 for s in self.lifecycle.states}
            self._own, self._own_cause = self._state, self._cause
            self._counts[self._own] = 1
        child._set_parent(self)
        child._flags |= _UNCOUNTED
        self._pending = "add"
        try:
            await self._bring_up(child)
        except BaseException:
            child._set_parent(None)
            child._flags &= ~_UNCOUNTED
            raise
        finally:
            self._pending = None
        child._flags &= ~_UNCOUNTED
        self.subsystems = (*self.subsystems, child)
        self._layers = (*self._layers, (child,))
        self._child_moved(child, child.lifecycle.initial, child._state, adopted=True)
        return child

    async def _bring_up(self, child: System) -> None:
        target = self._state
        if target == self.lifecycle.initial:
            return
        state = await child.activate()
        if state == "ready" and target in ("running", "intermitted"):
            state = await child.start()
            if target == "intermitted":
                state = await child.suspend()
        wanted = {"ready": "ready", "disabled": "ready", "running": "running", "intermitted": "intermitted"}
        # the parent may have moved meanwhile (a sibling failed, say): then the child does not fit
        if self._state != target or self._flags & _TERMINATING or state != wanted.get(target, state):
            error = BringUpFailed(child.path, state, target, child._cause)
            if not child.closed:
                await child.terminate(str(error))
            await child.wait_closed()
            raise error

    @staticmethod
    def _start_layers(children: Sequence[System], problems: list[str]) -> tuple[tuple[System, ...], ...]:
        by_name = {c.name: c for c in children if isinstance(c, System)}
        deps: dict[str, set[str]] = {}
        for name, child in by_name.items():
            if unknown := [a for a in child.after if a not in by_name]:
                problems.append(f"{name!r} starts after unknown siblings {unknown}")
            deps[name] = {a for a in child.after if a in by_name}
        layers: list[tuple[System, ...]] = []
        placed: set[str] = set()
        while len(placed) < len(by_name):
            layer = [n for n in by_name if n not in placed and deps[n] <= placed]
            if not layer:
                cycle = sorted(n for n in by_name if n not in placed)
                problems.append(f"'after' declarations form a cycle among {cycle}")
                break
            layers.append(tuple(by_name[n] for n in layer))
            placed.update(layer)
        return tuple(layers)

    def _closed_children(self) -> int:
        """How many children are closed (the own part is never, while these questions matter)."""
        counts = self._counts
        assert counts is not None
        return sum(counts.get(s, 0) for s in self.lifecycle.final_states)

    def _derive(self) -> str:
        counts = self._counts
        assert counts is not None
        return self.policy.derive(counts, len(self.subsystems) + 1)

    def _child_moved(self, child: System | None, source: str, dest: str, adopted: bool = False) -> None:
        """A child (None: the own part) moved: re-derive, and record this parent's move if any."""
        step = self._recount(child, source, dest, adopted)
        if step is not None:
            self._moved(*step)

    def _recount(
        self, child: System | None, source: str, dest: str, adopted: bool = False
    ) -> tuple[str, str, str, str | None] | None:
        """Update the counts; return this parent's derived move (trigger, source, dest, cause), if any."""
        counts = self._counts
        assert counts is not None
        if not adopted:
            counts[source] -= 1
        counts[dest] = counts.get(dest, 0) + 1
        if child is not None:
            self._mirror_own(counts)
            if dest in self.lifecycle.final_states:
                self._maybe_finish_own()
        target = self._derive()
        if target == self._state:
            return None
        old = self._state
        trigger = self.lifecycle.trigger_between(old, target)
        if trigger is None:
            mover = child.path if child else f"{self.path} (own part)"
            raise DerivationError(
                self.path, self.policy, old, target, f"{mover} moved {source!r} -> {dest!r}"
            )
        cause = None
        if dest == target and dest != "completed":
            if child is None:
                cause = self._own_cause
            elif child._counts is not None:
                cause = child._cause  # already names the system it came from
            else:
                cause = f"{child.path} {dest}" + (f": {child._cause}" if child._cause else "")
        self._state = target
        self._cause = cause
        if target == "terminated" and self.policy.terminates_siblings and not self._flags & _TERMINATING:
            self._spawn(self._terminate_tree(f"fail-fast: {cause or 'a subsystem terminated'}"))
        return trigger, old, target, cause

    def _mirror_own(self, counts: dict[str, int]) -> None:
        """A parent without a main has nothing of its own to suspend: its own part follows its children.

        It is intermitted exactly when every open child is, so that a parent whose
        children were suspended one by one is intermitted, as the rule says.
        """
        own = self._own
        if own not in ("running", "intermitted") or "main" in self._overrides or self._flags & _FINISHING:
            return
        real_open = len(self.subsystems) - self._closed_children()
        real_intermitted = counts.get("intermitted", 0) - (own == "intermitted")
        want = "intermitted" if real_open > 0 and real_intermitted == real_open else "running"
        if want != own:
            counts[own] -= 1
            counts[want] = counts.get(want, 0) + 1
            self._own = want

    def _spawn(self, coro: typing.Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` as a task of this system; `wait_closed` waits for it and re-raises its error."""
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = _Tasks()
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.done)
        return task

    # -- own part: the system's own hooks, a leaf's whole state --------------------------

    @property
    def _part(self) -> str:
        return self._state if self._counts is None else self._own

    def _can(self, trigger: str) -> bool:
        return self.lifecycle.route(self._part, trigger) is not None

    def _part_move(
        self,
        trigger: str,
        cause: str | None = None,
        kwargs: Mapping[str, Any] = _EMPTY,
        route: Route | None = None,
    ) -> None:
        if self._counts is None:
            self._commit(trigger, cause, kwargs, route)
            return
        old = self._own
        own_route = self.lifecycle.route(old, trigger)
        if own_route is None:
            raise self.lifecycle.refuse(_Own(self), trigger)
        self._own = own_route.dest
        self._own_cause = cause
        self._child_moved(None, old, own_route.dest)

    def _maybe_finish_own(self) -> None:
        """A parent without a main completes its own part once every child is closed."""
        if (
            self._counts is None
            or self._own != "running"
            or "main" in self._overrides
            or self._main is not None
        ):
            return
        if self._closed_children() == len(self.subsystems):
            self._watcher = self._spawn(self._finish_main())

    # -- running hooks -----------------------------------------------------------------

    def _get_runner(self) -> Runner:
        if self._runner is None:
            self._runner = make_runner(self, self.executor)
        return self._runner

    def _remote_spec(self) -> tuple[type[System], str, dict[str, Any]]:
        """What a process executor needs to rebuild this system elsewhere: class, name, config."""
        config = {
            f.name: getattr(self, f.name)
            for f in attrs.fields(type(self))
            if f.init and f.name not in ("name", "subsystems", "policy")
        }
        return type(self), self.name, config

    async def _hook(self, hook: str, kwargs: Mapping[str, Any] = _EMPTY) -> str | None:
        """Run `hook` if overridden; return the failure as a cause text, None on success.

        A process system always runs ``prepare`` in its worker: activation is what
        starts the process, so every event after it carries the worker's pid.
        """
        if hook not in self._overrides and not (hook == "prepare" and self.executor == "process"):
            return None
        runner = self._get_runner()
        call: typing.Awaitable[None] = runner.call(hook, kwargs)
        if hook in _BOUNDED_HOOKS:  # closing must not hang: cut off after the grace period
            call = asyncio.wait_for(call, self.grace)
        try:
            if hook == "teardown":
                await call
            else:  # prepare and shutdown: a terminate waits for them before teardown
                inflight = self._inflight = asyncio.ensure_future(call)
                try:
                    await inflight
                finally:
                    if self._inflight is inflight:
                        self._inflight = None
        except TimeoutError:
            await runner.close()
            return f"{hook}() did not finish within {self.grace:g}s; cut off"
        except ConfigError:
            # a configuration that cannot run here is the caller's mistake, not the
            # system's failure: raise it with nothing changed
            await runner.close()
            self._runner = None
            raise
        except Exception as exc:
            return _describe(exc)
        return None

    def _launch(self) -> None:
        if "main" not in self._overrides:
            return
        main = self._main = self._get_runner().launch()
        self._watcher = self._spawn(self._watch(main))

    async def _watch(self, main: asyncio.Future[None]) -> None:
        """Turn main's end into the documented transition: complete, restart or terminate."""
        try:
            await main
        except BaseException as exc:
            if self._flags & _TERMINATING or self._main is not main:
                return  # the terminate path owns the ending
            if isinstance(exc, asyncio.CancelledError) and not main.cancelled():
                raise
            self._main = None
            await self._main_failed(_describe(exc))
            return
        if self._flags & _TERMINATING or self._main is not main:
            return
        if self._part == "intermitted":
            self._flags |= _MAIN_DONE  # returned despite the suspension: complete on resume
            return
        await self._finish_main()

    async def _finish_main(self) -> None:
        """Main returned (or there is none): run ``shutdown``, then move to completed."""
        if self._flags & (_TERMINATING | _FINISHING) or not self._can("complete"):
            return
        self._flags |= _FINISHING
        self._main = None
        owner = self._pending is None
        if owner:
            self._pending = "complete"  # no suspend while shutdown runs
        try:
            cause = await self._hook("shutdown")
            await self._close_runner()
        finally:
            self._flags &= ~_FINISHING
            if owner:
                self._pending = None
        if self._flags & _TERMINATING or not self._can("complete"):
            return
        self._part_move("complete", cause=cause)

    async def _main_failed(self, cause: str) -> None:
        policy = self.restart
        if (
            policy is None
            or not self._may_restart(policy)
            or (not self._can("resume") and not self._can("suspend"))
        ):
            await self._terminate_own(cause)
            return
        n = len(self._restarts or ())
        why = f"restart {n}/{policy.limit} after: {cause}"
        if self._part == "intermitted":
            # suspended by its user when it failed: record why, restart when resumed
            self._set_part_cause(why)
            self._flags |= _RESTART_ON_RESUME
            return
        self._part_move("suspend", cause=why)
        # the backoff is an operation in progress: only terminate may interrupt it
        owner = self._pending is None
        if owner:
            self._pending = "restart"
        try:
            await asyncio.sleep(min(policy.backoff * 2 ** (n - 1), policy.max_backoff))
        finally:
            if owner:
                self._pending = None
        if self._flags & _TERMINATING or self._part != "intermitted":
            return
        self._part_move("resume")
        self._launch()

    def _may_restart(self, policy: Restart) -> bool:
        now = time.monotonic()
        window = self._restarts
        if window is None:
            window = self._restarts = deque()
        while window and now - window[0] > policy.within:
            window.popleft()
        if len(window) >= policy.limit:
            return False
        window.append(now)
        return True

    async def _close_runner(self) -> None:
        runner = self._runner
        if runner is not None:
            await runner.close()

    async def _terminate_own(self, cause: str | None) -> None:
        """Stop main if it runs, run teardown once, close the runner, then move to terminated."""
        if self._part in self.lifecycle.final_states:
            return
        self._flags |= _TERMINATING
        notes = []
        main, runner = self._main, self._runner
        if (
            main is not None
            and not main.done()
            and runner is not None
            and (note := await runner.stop(self.grace))
        ):
            notes.append(note)
        watcher = self._watcher
        if (
            main is not None
            and not main.done()
            and watcher is not None
            and watcher is not asyncio.current_task()
        ):
            watcher.cancel()  # main was given up on (an abandoned thread): nobody waits for it
        self._main = None
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            # prepare or shutdown is still running: teardown must not overlap it
            done, _ = await asyncio.wait([inflight], timeout=self.grace)
            if not done:
                notes.append(f"an unfinished hook was still running after {self.grace:g}s")
        if not self._flags & _TORN_DOWN:
            self._flags |= _TORN_DOWN
            if failure := await self._hook("teardown"):
                notes.append(f"teardown failed: {failure}")
        await self._close_runner()
        if self._part in self.lifecycle.final_states:
            return
        text = "\n".join(x for x in (cause, *notes) if x) or None
        self._part_move("terminate", cause=text)

    # -- triggers ----------------------------------------------------------------------

    def _begin(self, trigger: str, kwargs: Mapping[str, Any] = _EMPTY) -> Route:
        if self._pending is not None and trigger != "terminate":
            raise TransitionNotAllowed(
                self.path,
                self._state,
                trigger,
                self.allowed(),
                detail=f"'{trigger}' must wait: '{self._pending}' is in progress; await it first",
            )
        route = self.lifecycle.check(self, trigger, kwargs)
        if self._counts is not None and not _IN_CASCADE.get() and (source := _CASCADE_FROM.get(trigger)):
            self._precheck(trigger, kwargs, self.lifecycle.initial if source == "initial" else source)
        return route

    def _children_in(self, state: str) -> list[System]:
        """Children a cascade moves: those in `state`, unless busy with an operation of their own."""
        return [c for c in self.subsystems if c._state == state and c._pending is None]

    def _precheck(self, trigger: str, kwargs: Mapping[str, Any], state: str) -> None:
        """Evaluate the guards of every child a cascade would move, before any moves.

        So that a guard refusing deep in the tree leaves the whole tree unchanged.
        """
        stack = [self]
        while stack:  # iterative: trees may be deeper than the recursion limit
            for child in stack.pop()._children_in(state):
                child.lifecycle.check(child, trigger, kwargs)
                if child._counts is not None:
                    stack.append(child)

    async def trigger(self, trigger: str, /, **kwargs: Any) -> str:
        """Fire any trigger of the lifecycle by name; returns the new state."""
        method = getattr(type(self), trigger, None)
        if trigger in _CASCADING and method is not None:
            result: str = await method(self, **kwargs)
            return result
        cause = kwargs.pop("cause", None)
        route = self._begin(trigger, kwargs)
        if self._counts is not None:
            for child in self.subsystems:
                if child.lifecycle.route(child._state, trigger) is not None:
                    await _down(child, child.trigger(trigger, **kwargs))
            if self.lifecycle.route(self._own, trigger) is not None:
                self._part_move(trigger, cause)
            return self._state
        self._commit(trigger, cause, kwargs, route)
        return self._state

    async def activate(self, **kwargs: Any) -> str:
        """initial → ready: run ``prepare(**kwargs)``; if it raises, → disabled with the error as cause."""
        route = self._begin("activate", kwargs)
        self._pending = "activate"
        try:
            if self._counts is not None:
                await _gather(c.activate(**kwargs) for c in self._children_in(self.lifecycle.initial))
            await self._prepare_part("activate", kwargs, route)
        finally:
            self._pending = None
        if self._flags & _TERMINATING:  # a terminate overtook it: report where that ends
            return await self.wait_closed()
        return self._state

    async def _prepare_part(self, trigger: str, kwargs: Mapping[str, Any], route: Route | None) -> None:
        source = self._part
        if self.lifecycle.route(source, trigger) is None:
            return
        failure = None if self._flags & _PREPARED else await self._hook("prepare", kwargs)
        if self._part != source or self._flags & _TERMINATING:  # the terminate path owns the ending
            return
        own_route = route if self._counts is None else None
        if failure is None:
            self._flags |= _PREPARED
            self._part_move(trigger, None, kwargs, own_route)
        elif trigger == "enable":
            self._set_part_cause(failure)  # stays disabled, with the new cause
        elif self.lifecycle.route(source, "disable") is not None:
            self._part_move("disable", cause=failure)
        else:
            await self._terminate_own(failure)

    def _set_part_cause(self, cause: str) -> None:
        if self._counts is None:
            self._cause = cause
        else:
            self._own_cause = cause
            self._cause = cause

    async def disable(self, cause: str | BaseException, **kwargs: Any) -> str:
        """initial → disabled, recording why (a cause is required)."""
        if not cause:
            raise TypeError(
                f"{self.path}: disable() needs a cause (a reason text or an exception), got {cause!r}"
            )
        text = cause if isinstance(cause, str) else _describe(cause)
        route = self._begin("disable", kwargs)
        if self._counts is not None:
            for child in self._children_in(self.lifecycle.initial):
                await _down(child, child.disable(text, **kwargs))
            if self._own == self.lifecycle.initial:
                self._part_move("disable", text)
        else:
            self._commit("disable", text, kwargs, route)
        return self._state

    async def enable(self, **kwargs: Any) -> str:
        """disabled → ready: run ``prepare`` again unless it already succeeded."""
        route = self._begin("enable", kwargs)
        self._pending = "enable"
        try:
            if self._counts is not None:
                await _gather(c.enable(**kwargs) for c in self._children_in("disabled"))
            await self._prepare_part("enable", kwargs, route)
        finally:
            self._pending = None
        if self._flags & _TERMINATING:
            return await self.wait_closed()
        return self._state

    async def start(self) -> str:
        """ready → running: launch ``main`` (children in declared order, honouring ``after``)."""
        route = self._begin("start")
        if self._counts is None:
            self._commit("start", route=route)
            self._launch()
            return self._state
        self._pending = "start"
        try:
            for layer in self._layers:
                await _gather(c.start() for c in layer if c._state == "ready" and c._pending is None)
            if self._own == "ready":
                self._part_move("start")
                self._launch()
                self._maybe_finish_own()
        finally:
            self._pending = None
        return self._state

    async def complete(self) -> str:
        """running → completed: ask main to finish (``ctx.stopping``), then run ``shutdown``."""
        watcher = self._watcher
        if self._flags & _FINISHING and watcher is not None and self._counts is None:
            await asyncio.shield(watcher)  # main already returned: shutdown is under way
            return self._state
        self._begin("complete")
        self._pending = "complete"
        try:
            if self._counts is not None:
                await _gather(c.complete() for c in self._children_in("running"))
            await self._complete_part()
        finally:
            self._pending = None
        if self._flags & _TERMINATING:  # a terminate overtook it: report where that ends
            return await self.wait_closed()
        return self._state

    async def _complete_part(self) -> None:
        """Ask main to return and wait for the watcher that completes (a restart launches anew)."""
        while self._can("complete"):
            watcher = self._watcher
            if self._main is not None and self._runner is not None:
                self._runner.request_stop()
            elif watcher is None or watcher.done():
                if self._counts is None:  # no main: complete now
                    await self._finish_main()
                return  # a parent's own part completes once its children have
            if watcher is None:
                return
            await asyncio.shield(watcher)

    async def suspend(self) -> str:
        """running → intermitted: pause main (``ctx.checkpoint`` blocks, or SIGSTOP in signal mode)."""
        route = self._begin("suspend")
        if self._counts is not None:
            for child in self._children_in("running"):
                await _down(child, child.suspend())
            if self._own == "running":
                self._suspend_part(None)
        else:
            self._suspend_part(route)
        return self._state

    def _suspend_part(self, route: Route | None) -> None:
        if self._main is not None and self._runner is not None:
            self._runner.suspend()
        self._part_move("suspend", route=route)

    async def resume(self) -> str:
        """intermitted → running: let main go on."""
        route = self._begin("resume")
        if self._counts is not None:
            for child in self._children_in("intermitted"):
                await _down(child, child.resume())
            if self._own == "intermitted":
                self._resume_part(None)
        else:
            self._resume_part(route)
        return self._state

    def _resume_part(self, route: Route | None) -> None:
        if self._main is not None and self._runner is not None:
            self._runner.resume()
        self._part_move("resume", route=route)
        if self._flags & _MAIN_DONE:
            self._flags &= ~_MAIN_DONE
            self._watcher = self._spawn(self._finish_main())
        elif self._flags & _RESTART_ON_RESUME:
            self._flags &= ~_RESTART_ON_RESUME
            self._launch()

    async def terminate(self, cause: str | None = None) -> str:
        """Any open state → terminated: stop main, run ``teardown`` (children in reverse start order)."""
        if self._flags & _TERMINATING and not self.closed:
            return await self.wait_closed()  # already on its way: wait for the same end
        self._begin("terminate")
        await self._terminate_tree(cause)
        return self._state

    async def _terminate_tree(self, cause: str | None) -> None:
        self._flags |= _TERMINATING
        if self._counts is not None:
            for layer in reversed(self._layers):
                for child in reversed(layer):
                    if not child.closed:
                        await _down(child, child.terminate(cause))
                    else:  # closed by derivation, its own subtree may still be ending
                        await child.wait_closed()
        await self._terminate_own(cause)

    # -- whole runs ----------------------------------------------------------------------

    async def wait_closed(self) -> str:
        """Wait until the system is in a final state and its whole subtree has settled; return it.

        A parent is terminated as soon as one child is (fail-fast); this also waits
        for the siblings' terminations and the parent's teardown that follow.
        """
        if not self.closed:
            if self._closed is None:
                self._closed = asyncio.Event()
            await self._closed.wait()
        await self._settled()
        return self._state

    async def _settled(self) -> None:
        """Wait for the runtime tasks of the subtree; re-raise the first error one raised."""
        me = asyncio.current_task()
        for node in self.walk():
            tasks = node._tasks
            while tasks:
                pending = [t for t in tasks if t is not me and not t.done()]
                if not pending:
                    break
                await asyncio.wait(pending)
            for task in [t for t in tasks or () if t.done()]:
                tasks.done(task)  # type: ignore[union-attr]  # before its callback: see its error now
            if tasks is not None and tasks.error is not None:
                error, tasks.error = tasks.error, None
                raise error

    async def run(self, **kwargs: Any) -> str:
        """Activate, start, wait until closed; return the final state.

        A tree that cannot start (a preparation failed: some system is disabled) is
        terminated at once, so that what was prepared is torn down and no process
        is left; the cause names what failed.
        """
        state = await self.activate(**kwargs)
        if state != "ready":
            if not self.closed:
                failed = next((s for s in self.walk() if s._state == "disabled" and s._cause), self)
                why = f": {failed._cause.splitlines()[-1]}" if failed._cause else ""
                await self.terminate(f"run: {failed.path} is {failed._state}{why}")
            return await self.wait_closed()
        await self.start()
        return await self.wait_closed()


#: How many listeners are subscribed anywhere (a list: a mutable module-level counter).
_SUBSCRIBED: Final = [0]
_TERMINATING: Final = 1
_TORN_DOWN: Final = 2
_PREPARED: Final = 4
_MAIN_DONE: Final = 8
_FINISHING: Final = 16
_BOUNDED_HOOKS: Final = frozenset({"shutdown", "teardown"})
_UNCOUNTED: Final = 32  # a child being brought up: in the tree's journal, not yet in the derivation
_RESTART_ON_RESUME: Final = 64  # main failed while its user had it suspended
#: (policy id, lifecycle id) -> (policy, lifecycle, report); the objects keep the ids valid.
_POLICIES_CHECKED: dict[tuple[int, int], tuple[object, Lifecycle, PolicyReport]] = {}
#: The state of the children each cascading trigger moves (``initial``: the lifecycle's own).
_CASCADE_FROM: Final = {
    "activate": "initial",
    "disable": "initial",
    "enable": "disabled",
    "start": "ready",
    "complete": "running",
    "suspend": "running",
    "resume": "intermitted",
}
#: Triggers with a method of their own (terminate cascades from every open state).
_CASCADING: Final = frozenset({*_CASCADE_FROM, "terminate"})


def _adoption_problems(children: Sequence[System], new: System | None = None) -> list[str]:
    """What keeps `children` (or only `new` among them) from being adopted by one parent."""
    problems = []
    names = Counter(getattr(c, "name", None) for c in children)
    if dups := sorted(str(n) for n, k in names.items() if k > 1):
        problems.append(f"subsystem names must be unique among siblings: {dups}")
    for child in children if new is None else [new]:
        if not isinstance(child, System):
            problems.append(f"subsystems must be Systems, got {child!r}")
        elif child._parent is not None:
            problems.append(f"{child.name!r} already belongs to {child._parent.path!r}")
        elif child._state != child.lifecycle.initial:
            problems.append(f"{child.name!r} is {child._state!r}; only a new system can be adopted")
    return problems


class _Tasks(set[asyncio.Task[None]]):
    """A system's runtime tasks, and the first error one of them raised."""

    error: BaseException | None = None

    def done(self, task: asyncio.Task[None]) -> None:
        if task not in self:  # already seen (by `_settled` or the done callback)
            return
        self.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            LOGGER.error("statesys: a runtime task failed", exc_info=exc)
            if self.error is None:
                self.error = exc


class _Own:
    """Stands for a parent's own part in error messages."""

    def __init__(self, system: System) -> None:
        self.path = f"{system.path} (own part)"
        self._state = system._own


#: True inside a cascade: the guards below were already checked by the system it started from.
_IN_CASCADE: contextvars.ContextVar[bool] = contextvars.ContextVar("statesys_in_cascade", default=False)


async def _down(child: System, coro: typing.Coroutine[Any, Any, str]) -> str:
    """Command a child from a cascade.

    A parent child runs as a task of its own: each level then has its own stack, so
    a cascade down a deep tree does not nest Python frames level after level.
    """
    token = _IN_CASCADE.set(True)
    try:
        if child._counts is None:
            return await coro
        return await asyncio.ensure_future(coro)
    finally:
        _IN_CASCADE.reset(token)


async def _gather(coros: typing.Iterable[typing.Coroutine[Any, Any, Any]]) -> None:
    """Run concurrently (each child in the cascade); wait for all; re-raise the first failure."""
    token = _IN_CASCADE.set(True)
    try:
        results = await asyncio.gather(*coros, return_exceptions=True)
    finally:
        _IN_CASCADE.reset(token)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def run(system: System, *, deadline: float = 10.0, **kwargs: Any) -> str:
    """Run `system` to its end from synchronous code; return its final state.

    Ctrl-C or SIGTERM terminates the tree in reverse start order (cut off after
    `deadline` seconds), then raises `KeyboardInterrupt` / ``SystemExit(143)``.
    """
    from .runtime._orchestrator import supervise

    _prefork(system)
    return asyncio.run(supervise(system, deadline=deadline, **kwargs))


def _prefork(system: System) -> None:
    """Start the process executor's fork server now, while forking this process is safe."""
    if any(node.executor == "process" for node in system.walk()):
        from .runtime._forkserver import start_early

        start_early()
