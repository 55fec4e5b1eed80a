"""Steps, the checked harness that plays them on a fresh tree, and replayable scripts.

Everything the kit runs goes through `Harness`: the state machine, the explorer and
`check_steps` only decide *which* steps to fire.  The harness builds the tree,
instruments it (hook calls and guard verdicts are recorded, events are watched),
fires one step at a time on its own event loop, lets the tree settle, and checks
the invariants of DESIGN §3–4 after every step.  A violation raises
`InvariantViolation` carrying a short script that replays the steps.

This module needs neither hypothesis nor pytest, so the pytest plugin (loaded in
every session where statesys is installed) can import it without the extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable, Mapping, Sequence
from typing import Any, Final, NoReturn, TypeVar

import attrs

from .._events import Event
from .._lifecycle import Lifecycle
from .._system import System
from ..exceptions import GuardRejected, TransitionNotAllowed

__all__ = [
    "Harness",
    "Invariant",
    "InvariantViolation",
    "Step",
    "check_steps",
    "render_script",
    "settle",
]

T = TypeVar("T")
#: A user invariant: gets the root system; fails by raising AssertionError or returning False.
#: (``Any``: an invariant typed for the user's own System subclass must fit.)
Invariant = Callable[[Any], object]
Target = Callable[[], System]
#: (path, state, cause, own part) per system, number of events, number of hook calls.
Snapshot = tuple[tuple[tuple[str, str, str | None, str], ...], int, int]

#: Hooks whose calls the harness records.
_HOOKS: Final = ("prepare", "main", "shutdown", "teardown")
#: A settle that takes longer than this is reported (a hung hook or teardown), not waited for.
_SETTLE_LIMIT: Final = 30.0


# -- steps ------------------------------------------------------------------------------------


def _as_kwargs(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@attrs.frozen(repr=False)
class Step:
    """One trigger fired at one system of a tree.

    `path` is relative to the root (``""`` is the root itself, ``"loader"`` or
    ``"trainer/loader"`` a descendant); `kwargs` are the trigger's arguments
    (``cause`` for ``disable`` and ``terminate``, anything ``prepare`` or a guard
    takes for the others).  `illegal` marks a step generated to be refused; the
    harness decides from the lifecycle table at firing time either way.
    """

    trigger: str
    kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=_as_kwargs)
    path: str = ""
    illegal: bool = False

    def node(self, root: System) -> System:
        """The system this step commands, in the tree under `root`."""
        return root[self.path] if self.path else root

    async def fire(self, root: System) -> str:
        """Fire the step on its system; returns the new state (raises as the trigger does)."""
        return await self.node(root).trigger(self.trigger, **self.kwargs)

    def call(self, var: str = "system") -> str:
        """The step as source: ``await system["loader"].disable('maintenance')``."""
        target = f"{var}[{self.path!r}]" if self.path else var
        kwargs = dict(self.kwargs)
        args = []
        if self.trigger in ("disable", "terminate") and "cause" in kwargs:
            args.append(repr(kwargs.pop("cause")))
        args += [f"{k}={v!r}" for k, v in kwargs.items()]
        return f"await {target}.{self.trigger}({', '.join(args)})"

    def __repr__(self) -> str:
        parts = [repr(self.trigger)]
        if self.kwargs:
            parts.append(repr(dict(self.kwargs)))
        if self.path:
            parts.append(f"path={self.path!r}")
        if self.illegal:
            parts.append("illegal=True")
        return f"Step({', '.join(parts)})"

    def __str__(self) -> str:
        where = f"{self.path}." if self.path else ""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{where}{self.trigger}({args})"


# -- settling ---------------------------------------------------------------------------------


def _busy(root: System) -> list[asyncio.Task[Any]]:
    """Background tasks of the tree that will end on their own soon.

    A watcher whose main still runs is not one of them: main may run for ever.
    """
    out = []
    for node in root.walk():
        for task in node._tasks or ():
            if task.done():
                continue
            main = node._main
            if task is node._watcher and main is not None and not main.done():
                continue
            out.append(task)
    return out


async def _quiet() -> None:
    """Yield until nothing is scheduled on the loop any more."""
    loop = asyncio.get_running_loop()
    # The ready queue is private to asyncio's base loop; without it, yield a fixed amount.
    ready = getattr(loop, "_ready", None)
    if ready is None:
        for _ in range(25):
            await asyncio.sleep(0)
        return
    # Callbacks scheduled while this task slept are in the queue when it wakes up,
    # so one wake-up to an empty queue means quiet.
    await asyncio.sleep(0)
    while ready:
        await asyncio.sleep(0)


async def settle(system: System, *, limit: float = _SETTLE_LIMIT) -> None:
    """Wait until the tree under `system` is quiet: every cascade, fail-fast termination,
    shutdown and teardown that the last trigger set off has run.

    Mains that keep running are not waited for.  The replay scripts the kit prints
    call this after each step, as the kit does.  Raises `TimeoutError` after `limit`
    seconds (a hook that hangs).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        await _quiet()
        busy = _busy(system)
        if not busy:
            return
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(f"{system.path} did not settle within {limit:g}s: {busy}")
        await asyncio.wait(busy, timeout=left)


# -- scripts ----------------------------------------------------------------------------------


def _builder_source(target: Target) -> tuple[str | None, str]:
    """How a script builds the tree: an import line (if importable) and an expression."""
    if isinstance(target, functools.partial):
        imported, call = _builder_source(target.func)
        if imported is not None:
            args = [repr(a) for a in target.args] + [f"{k}={v!r}" for k, v in target.keywords.items()]
            return imported, f"{call[:-2]}({', '.join(args)})"
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        top = qualname.split(".")[0]
        return f"from {_public_module(module, top)} import {top}", f"{qualname}()"
    return None, f"...  # build the tree as {target!r} does"


def _public_module(module: str, name: str) -> str:
    """The shortest already imported parent of `module` that exports the same `name`."""
    obj = getattr(sys.modules.get(module), name, None)
    parts = module.split(".")
    for i in range(1, len(parts)):
        parent = sys.modules.get(".".join(parts[:i]))
        if obj is not None and getattr(parent, name, None) is obj:
            return ".".join(parts[:i])
    return module


def render_script(
    target: Target,
    steps: Iterable[Step],
    *,
    refused: Iterable[bool] | None = None,
    failure: str | None = None,
    settle_each: bool = True,
    comments: Mapping[int, Sequence[str]] | None = None,
) -> str:
    """A Python snippet that rebuilds the tree and fires `steps`, for a user to paste.

    `refused` says, step by step, which ones were refused (they are wrapped so that
    the script goes on); `failure` is written as a comment after the last step;
    ``comments[i]`` are written before step `i` (actions of user rules that are
    not triggers).
    """
    steps = list(steps)
    refusals = list(refused) if refused is not None else [s.illegal for s in steps]
    notes = comments or {}
    import_line, build = _builder_source(target)
    lines = [
        "import asyncio",
        "import contextlib",
        "",
        "import statesys",
        "from statesys.testing import settle",
    ]
    if import_line:
        lines.append(import_line)
    lines += ["", "", "async def replay() -> None:", f"    system = {build}"]
    for i, step in enumerate(steps):
        lines += [f"    # {text}" for text in notes.get(i, ())]
        last = i == len(steps) - 1
        note = ""
        if last and failure:
            note = "  # fails here: " + failure.strip().splitlines()[0][:160]
        if i < len(refusals) and refusals[i]:
            lines.append("    with contextlib.suppress(statesys.TransitionNotAllowed):  # refused")
            lines.append(f"        {step.call()}{note}")
        else:
            lines.append(f"    {step.call()}{note}")
        if settle_each:
            lines.append("    await settle(system)")
    lines += [f"    # {text}" for text in notes.get(len(steps), ())]
    if not steps:
        lines.append(
            "    await settle(system)" + (f"  # fails here: {failure.splitlines()[0]}" if failure else "")
        )
    lines += ["", "", "asyncio.run(replay())"]
    return "\n".join(lines)


class InvariantViolation(AssertionError):
    """The kit found a sequence of steps that breaks an invariant.

    `steps` is the sequence (shortest known), `script` a Python snippet that replays
    it, `message` what went wrong.  ``str()`` shows all three.
    """

    #: The pytest plugin turns this off and shows the script in a report section instead.
    statesys_show_script = True

    def __init__(self, message: str, steps: Sequence[Step], script: str) -> None:
        self.message = message
        self.steps = tuple(steps)
        self.script = script
        self.statesys_script = script
        super().__init__(f"{message}\n\nsteps: {', '.join(map(str, steps)) or '(none)'}")

    def __str__(self) -> str:
        if not self.statesys_show_script:
            return super().__str__()
        return f"{super().__str__()}\n\nreplay:\n{self.script}"


def attach_script(exc: BaseException, script: str) -> None:
    """Add `script` to an exception raised elsewhere (a user invariant, hypothesis) as a note."""
    if getattr(exc, "statesys_script", None):
        return
    with contextlib.suppress(AttributeError):  # exceptions with slots: the note alone carries it
        exc.statesys_script = script  # type: ignore[attr-defined]
    exc.add_note(f"statesys: replay the failing steps with\n{script}")


# -- instrumentation ----------------------------------------------------------------------------

#: The observer watching each instrumented system (weakly: trees die with their harness).
_OBSERVERS: weakref.WeakKeyDictionary[System, _Observer] = weakref.WeakKeyDictionary()


class _HookCall:
    """Reports one call of `hook` on `system`, and its outcome, to the system's observer."""

    __slots__ = ("hook", "obs", "system")

    def __init__(self, system: System, hook: str) -> None:
        self.system, self.hook, self.obs = system, hook, _OBSERVERS.get(system)

    def __enter__(self) -> None:
        if self.obs is not None:
            self.obs.hook_started(self.system, self.hook)

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self.obs is not None:
            self.obs.hook_ended(self.system, self.hook, ok=exc_type is None)


def _hook_wrapper(fn: Callable[..., Any], hook: str) -> Callable[..., Any]:
    """Record every call of `hook` and its outcome; keep sync/async and the signature."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(self: System, *args: Any, **kwargs: Any) -> Any:
            with _HookCall(self, hook):
                return await fn(self, *args, **kwargs)

        return awrapper

    @functools.wraps(fn)
    def wrapper(self: System, *args: Any, **kwargs: Any) -> Any:
        with _HookCall(self, hook):
            return fn(self, *args, **kwargs)

    return wrapper


def _guard_wrapper(fn: Callable[..., Any], trigger: str, kind: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def guard(model: Any, *args: Any, **kwargs: Any) -> Any:
        verdict = fn(model, *args, **kwargs)
        obs = _OBSERVERS.get(model) if isinstance(model, System) else None
        if obs is not None:
            passed = bool(verdict) if kind == "conditions" else not verdict
            obs.guard_evaluated(model, trigger, passed)
        return verdict

    return guard


# id(lifecycle) -> (lifecycle, guarded copy): Lifecycle has slots and no weakref.
_GUARDED: dict[int, tuple[Lifecycle, Lifecycle]] = {}


def _guarded(lifecycle: Lifecycle) -> Lifecycle:
    """`lifecycle` with every guard wrapped to report its verdict (the same object if none)."""
    if not any(t.conditions or t.unless for t in lifecycle.transitions):
        return lifecycle
    cached = _GUARDED.get(id(lifecycle))
    if cached is not None and cached[0] is lifecycle:
        return cached[1]
    states, transitions = lifecycle.declaration()
    for t in transitions:
        for kind in ("conditions", "unless"):
            if kind in t:
                t[kind] = [_guard_wrapper(fn, t["trigger"], kind) for fn in t[kind]]
    copy = Lifecycle(states, transitions, initial=lifecycle.initial, name=lifecycle.name)
    _GUARDED[id(lifecycle)] = (lifecycle, copy)
    return copy


_INSTRUMENTED: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def _instrumented(cls: type[System]) -> type[System]:
    """A subclass of `cls`, identical in behaviour, that reports hook calls, guard verdicts
    and background-task failures to the observer of each instance.

    Only hooks `cls` overrides are wrapped: wrapping a default hook would make the
    runtime believe it is overridden (a system without ``main`` runs until told).
    """
    if getattr(cls, "_statesys_instrumented", False):
        return cls
    done = _INSTRUMENTED.get(cls)
    if done is not None:
        return done
    base_spawn = cls._spawn

    def _spawn(self: System, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = base_spawn(self, coro)
        obs = _OBSERVERS.get(self)
        if obs is not None:
            task.add_done_callback(functools.partial(obs.task_done, self))
        return task

    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "_statesys_instrumented": True,
        "_spawn": _spawn,
    }
    for hook in _HOOKS:
        if hook in cls._overrides:
            namespace[hook] = _hook_wrapper(getattr(cls, hook), hook)
    meta: Any = type(cls)  # SystemMeta takes the lifecycle as a class keyword
    sub: type[System] = meta(cls.__name__, (cls,), namespace, lifecycle=_guarded(cls.lifecycle))
    sub.__qualname__ = cls.__qualname__
    _INSTRUMENTED[cls] = sub
    return sub


def _instrument(node: System) -> bool:
    """Swap `node`'s class for its instrumented twin; False where that cannot be done.

    Process systems keep their class: it is pickled by reference into the worker.
    """
    if node.executor == "process":
        return False
    try:
        node.__class__ = _instrumented(type(node))
    except TypeError:  # a layout the twin cannot share (a class with extra slots added later)
        return False
    return True


# -- the observer -------------------------------------------------------------------------------


@attrs.define
class _Record:
    """What the harness knows about one system from outside."""

    path: str
    lifecycle: Lifecycle
    hooks: frozenset[str]  # hooks that are observed (overridden and instrumented)
    state: str
    closed: bool = False  # no hook may start any more
    prepared: int = 0  # successful prepare calls
    main: int = 0
    shutdown: int = 0
    teardown: int = 0
    parent: bool = False  # a parent's own part closes after its derived state does
    edges: set[tuple[str, str]] = attrs.Factory(set)


class _Observer:
    """Collects events, hook calls, guard verdicts and background failures of one tree."""

    def __init__(self, root: System) -> None:
        self.root = root
        self.prefix = len(root.path) + 1
        self.records: dict[str, _Record] = {}
        self.events: list[Event] = []
        self.violations: list[str] = []
        self.hook_calls = 0
        self.firing: Step | None = None
        self.guards: dict[tuple[str, str], bool] = {}

    def rel(self, system: System) -> str:
        return system.path[self.prefix :]

    def rel_path(self, path: str) -> str:
        return path[self.prefix :]

    def add(self, node: System, observed: bool) -> None:
        hooks = frozenset(node._overrides) if observed else frozenset()
        self.records[self.rel(node)] = _Record(
            self.rel(node), node.lifecycle, hooks, node.state, parent=bool(node.subsystems)
        )
        _OBSERVERS[node] = self

    # events ---------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        self.events.append(event)
        path = self.rel_path(event.path)
        rec = self.records.get(path)
        if rec is None:
            self.violations.append(f"an event for a system the tree does not have: {event}")
            return
        where = path or event.path
        if event.source != rec.state:
            self.violations.append(
                f"{where}: event {event.source} --{event.trigger}--> {event.dest}, "
                f"but the last change observed left it {rec.state!r}"
            )
        if rec.lifecycle.is_final(rec.state) or rec.lifecycle.is_final(event.source):
            self.violations.append(
                f"{where}: left the closed state {rec.state!r} ({event.trigger} -> {event.dest})"
            )
        route = rec.lifecycle.route(event.source, event.trigger)
        if route is None or route.dest != event.dest:
            self.violations.append(
                f"{where}: illegal transition {event.source} --{event.trigger}--> {event.dest} "
                f"(allowed from {event.source}: {list(rec.lifecycle.allowed(event.source)) or 'none'})"
            )
        elif route.conditions or route.unless:
            self._check_guard(path, event)
        rec.state = event.dest
        rec.edges.add((event.source, event.trigger))
        if rec.lifecycle.is_final(event.dest) and not rec.parent:
            rec.closed = True

    def _check_guard(self, path: str, event: Event) -> None:
        """A move by the trigger being fired, in the fired subtree, needs its guards' yes."""
        step = self.firing
        if step is None or step.trigger != event.trigger:
            return  # a runtime move (main ended, failed, restarted): the table decides
        if step.path and path != step.path and not path.startswith(step.path + "/"):
            return  # an ancestor deriving its state
        verdict = self.guards.pop((path, event.trigger), None)
        where = path or event.path
        if verdict is None:
            self.violations.append(
                f"{where}: guard bypassed: {event.source} --{event.trigger}--> {event.dest} "
                "happened without its guards being asked"
            )
        elif not verdict:
            self.violations.append(
                f"{where}: {event.source} --{event.trigger}--> {event.dest} happened although a guard refused"
            )

    def guard_evaluated(self, model: System, trigger: str, passed: bool) -> None:
        key = (self.rel(model), trigger)
        self.guards[key] = self.guards.get(key, True) and passed

    # hooks ----------------------------------------------------------------------------

    def hook_started(self, node: System, hook: str) -> None:
        self.hook_calls += 1
        rec = self.records.get(self.rel(node))
        if rec is None:
            return
        where = rec.path or node.path
        if rec.closed:
            self.violations.append(f"{where}: {hook}() ran after it was closed ({rec.state})")
        if hook == "main":
            rec.main += 1
            if "prepare" in rec.hooks and not rec.prepared:
                self.violations.append(f"{where}: main() started before a successful prepare()")
        elif hook == "teardown":
            rec.teardown += 1
            if rec.teardown > 1:
                self.violations.append(f"{where}: teardown() ran {rec.teardown} times (at most once)")
        elif hook == "shutdown":
            rec.shutdown += 1
            if rec.shutdown > 1:
                self.violations.append(f"{where}: shutdown() ran {rec.shutdown} times (at most once)")

    def hook_ended(self, node: System, hook: str, ok: bool) -> None:
        if hook != "prepare" or not ok:
            return
        rec = self.records.get(self.rel(node))
        if rec is None:
            return
        rec.prepared += 1
        if rec.prepared > 1:
            self.violations.append(
                f"{rec.path or node.path}: prepare() succeeded {rec.prepared} times (at most once)"
            )

    # background tasks -------------------------------------------------------------------

    def task_done(self, node: System, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.violations.append(
                f"{self.rel(node) or node.path}: a background task failed: {type(exc).__name__}: {exc}"
            )


# -- the harness ----------------------------------------------------------------------------------


class Harness:
    """One instrumented tree on one event loop: fire steps, settle, check the invariants.

    Built by the state machine (one per example), the explorer (one per replayed
    prefix) and `check_steps`.  Every method that finds a problem raises
    `InvariantViolation` with the replay script of the steps fired so far.
    """

    def __init__(
        self,
        target: Target,
        *,
        invariants: Sequence[Invariant] = (),
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.target = target
        self.invariants = tuple(invariants)
        self._own_loop = loop is None
        self.loop = loop if loop is not None else asyncio.new_event_loop()
        self.steps: list[Step] = []
        self.refused: list[bool] = []
        self.comments: dict[int, list[str]] = {}
        self.closed = False
        try:
            root = target()
        except BaseException:
            self._close_loop()
            raise
        if not isinstance(root, System):
            self._close_loop()
            raise TypeError(f"statesys.testing: {target!r} must build a statesys.System, it built {root!r}")
        self.root = root
        self.nodes: dict[str, System] = {}
        self.observer = _Observer(root)
        for node in root.walk():
            observed = _instrument(node)
            self.observer.add(node, observed)
            self.nodes[self.observer.rel(node)] = node
        self._unsubscribe = root.subscribe(self.observer.on_event)
        self.has_parents = any(n.subsystems for n in self.nodes.values())

    # -- running ---------------------------------------------------------------------------

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def settle(self) -> None:
        try:
            self.run(self._settle())
        except TimeoutError as exc:
            self.fail(str(exc))

    async def _settle(self) -> None:
        await settle(self.root)
        for path, node in self.nodes.items():
            if node.subsystems and node._own in node.lifecycle.final_states:
                self.observer.records[path].closed = True

    def allowed(self, step: Step) -> bool:
        node = self.nodes[step.path]
        return step.trigger in node.lifecycle.allowed(node.state)

    def snapshot(self) -> Snapshot:
        """Everything a refused trigger must leave alone: states, causes, events, hook calls."""
        return (
            tuple((p, n.state, n.cause, n._own) for p, n in self.nodes.items()),
            len(self.observer.events),
            self.observer.hook_calls,
        )

    async def _attempt(self, step: Step) -> tuple[TransitionNotAllowed | None, Exception | None]:
        """Fire `step` and settle, in one turn of the loop driver: (refusal, other failure)."""
        if step.path not in self.nodes:
            raise KeyError(
                f"statesys.testing: {step} names no system of the tree (it has: {list(self.nodes)})"
            )
        node = self.nodes[step.path]
        self.steps.append(step)
        self.refused.append(step.trigger not in node.lifecycle.allowed(node.state))
        obs = self.observer
        obs.firing = step
        obs.guards.clear()
        refusal: TransitionNotAllowed | None = None
        error: Exception | None = None
        try:
            await step.fire(self.root)
        except TransitionNotAllowed as exc:
            refusal = exc
            self.refused[-1] = True
        except Exception as exc:
            error = exc
        finally:
            obs.firing = None
        try:
            await self._settle()
        except TimeoutError as exc:
            error = error or exc
        return refusal, error

    def replay(self, steps: Iterable[Step]) -> None:
        """Fire `steps` as a batch (one loop run), then check: for prefixes known to pass."""

        async def play() -> Exception | None:
            for step in steps:
                _, error = await self._attempt(step)
                if error is not None:
                    return error
            return None

        error = self.run(play())
        if error is not None:
            self.fail(f"{self.steps[-1]} raised {type(error).__name__}: {error}", error)
        self.check()

    def fire(self, step: Step) -> bool:
        """Fire `step`, settle, check everything; True if the step moved the tree.

        A step the table refuses must raise `TransitionNotAllowed` naming the system,
        its state and the trigger, and change nothing.  A step the table allows may
        only be refused by a guard (`GuardRejected`); any other exception is a failure.
        """
        node = self.nodes.get(step.path, self.root)
        state = node.state
        allowed = step.trigger in node.lifecycle.allowed(state)
        before = self.snapshot()
        refusal, error = self.run(self._attempt(step))
        if error is not None:
            self.fail(f"{step} raised {type(error).__name__}: {error}", error)
        after = self.snapshot()
        where = node.path
        if not allowed:
            if refusal is None:
                self.fail(f"{where}: {step.trigger!r} is not allowed from {state!r}, yet it was not refused")
            if (refusal.system, refusal.state, refusal.trigger) != (node.path, state, step.trigger):
                self.fail(
                    f"{where}: the refusal of {step.trigger!r} from {state!r} names "
                    f"{refusal.system!r}, {refusal.state!r}, {refusal.trigger!r}"
                )
            if after != before:
                self.fail(f"{where}: {step.trigger!r} was refused but changed {_diff(before, after)}")
        elif refusal is not None:
            if not isinstance(refusal, GuardRejected):
                self.fail(
                    f"{where}: its lifecycle allows {step.trigger!r} from {state!r}, "
                    f"yet it was refused: {refusal}"
                )
            if after != before:  # wherever in the cascade the guard sat (DESIGN §2)
                self.fail(
                    f"{refusal.system}: guard {refusal.guard} refused {step.trigger!r}, "
                    f"but the tree changed: {_diff(before, after)}"
                )
        self.check()
        return after != before

    def check(self) -> None:
        """Every invariant, on the settled tree."""
        obs = self.observer
        if obs.violations:
            self.fail("; ".join(dict.fromkeys(obs.violations)))
        for path, node in self.nodes.items():
            rec = obs.records[path]
            where = node.path
            if node.state != rec.state:
                self.fail(f"{where} is {node.state!r} but the events last said {rec.state!r}")
            if node.subsystems:
                counts: dict[str, int] = {}
                for child in node.subsystems:
                    counts[child.state] = counts.get(child.state, 0) + 1
                counts[node._own] = counts.get(node._own, 0) + 1
                derived = node.policy.derive(counts, len(node.subsystems) + 1)
                if node.state != derived:
                    self.fail(
                        f"{where} is {node.state!r}, but its policy gives {derived!r} for its "
                        f"children {sorted(counts.items())} (own part included)"
                    )
            own = node._own if node.subsystems else node.state
            if own == "terminated" and "teardown" in rec.hooks and rec.teardown != 1:
                self.fail(f"{where} was terminated and teardown() ran {rec.teardown} times (once expected)")
            if own == "completed" and "shutdown" in rec.hooks and rec.shutdown != 1:
                self.fail(f"{where} completed and shutdown() ran {rec.shutdown} times (once expected)")
        for invariant in self.invariants:
            name = getattr(invariant, "__name__", repr(invariant))
            try:
                result = invariant(self.root)
            except AssertionError as exc:
                self.fail(f"invariant {name} failed: {exc}".rstrip(": "), exc)
            if result is False:
                self.fail(f"invariant {name} returned False")

    def key(self, *, history: bool = True) -> Hashable:
        """The configuration: every system's state and the hook facts the invariants read.

        With `history`, also the set of transitions each system took, so that
        "resumed after it was once disabled" differs from "resumed".
        """
        out = []
        for path, node in self.nodes.items():
            rec = self.observer.records[path]
            out.append(
                (
                    node.state,
                    node._own if node.subsystems else None,
                    node.cause is None,
                    min(rec.prepared, 2),
                    min(rec.main, 1),
                    min(rec.shutdown, 2),
                    min(rec.teardown, 2),
                    frozenset(rec.edges) if history else None,
                )
            )
        return tuple(out)

    # -- reporting ---------------------------------------------------------------------------

    def script(self, failure: str | None = None) -> str:
        # settling lines matter only where something runs in the background
        background = self.has_parents or any("main" in n._overrides for n in self.nodes.values())
        return render_script(
            self.target,
            self.steps,
            refused=self.refused,
            failure=failure,
            settle_each=background,
            comments=self.comments,
        )

    def act(self, action: Awaitable[T], description: str) -> T:
        """Run something other than a trigger (a main told to finish, time passing), settle
        and check; the script shows `description` as a comment where it happened."""
        self.comments.setdefault(len(self.steps), []).append(description)
        try:
            result = self.run(action)
        except Exception as exc:
            self._settle_quietly()
            self.fail(f"{description} raised {type(exc).__name__}: {exc}", exc)
        self.settle()
        self.check()
        return result

    def fail(self, message: str, cause: BaseException | None = None) -> NoReturn:
        raise InvariantViolation(message, self.steps, self.script(message)) from cause

    # -- closing -----------------------------------------------------------------------------

    def _settle_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the failure being reported matters more
            self.run(settle(self.root))

    def close(self) -> None:
        """Terminate what is still open (unchecked), then release the loop if it is ours."""
        if self.closed:
            return
        self.closed = True
        self._unsubscribe()
        for node in self.nodes.values():
            _OBSERVERS.pop(node, None)
        try:
            if not self.root.closed:
                self.run(self.root.terminate("statesys.testing: run over"))
            self.run(settle(self.root))
        except Exception:  # a broken tree must not hide the report of why it broke
            pass
        finally:
            self._cancel_leftovers()
            if self._own_loop:
                self._close_loop()

    def _cancel_leftovers(self) -> None:
        tasks = [
            t
            for n in self.nodes.values()
            for t in (*(n._tasks or ()), n._main)
            if isinstance(t, asyncio.Future) and not t.done()
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            self.run(asyncio.wait(tasks))

    def _close_loop(self) -> None:
        loop = self.loop
        if loop.is_closed():
            return
        try:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _diff(before: Snapshot, after: Snapshot) -> str:
    parts = []
    for old, new in zip(before[0], after[0], strict=True):
        if old != new:
            parts.append(f"{old[0] or 'the root'}: (state, cause) {old[1:3]} -> {new[1:3]}")
    if before[1] != after[1]:
        parts.append(f"{after[1] - before[1]} event(s) were emitted")
    if before[2] != after[2]:
        parts.append(f"{after[2] - before[2]} hook(s) ran")
    return "; ".join(parts) or "something"


def check_steps(target: Target, steps: Iterable[Step], *, invariants: Sequence[Invariant] = ()) -> None:
    """Build a fresh tree with `target`, fire `steps` in order, check every invariant after each.

    The runner for sequences drawn from the kit's strategies.  Raises
    `InvariantViolation` (with a replay script) at the first problem.
    """
    with Harness(target, invariants=invariants) as harness:
        harness.check()
        for step in steps:
            harness.fire(step)
