"""Systems, lifecycles and the catalogue of planted bugs shared by the kit's tests and bench.

Each `Bug` is a buggy user system or lifecycle, or a library mutant applied with a
``setattr``-like patcher (pytest's ``monkeypatch.setattr``, or `patched` below).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from statesys import DEFAULT_LIFECYCLE, FAIL_FAST, Context, Lifecycle, System, TransitionNotAllowed
from statesys._system import _PREPARED, _TORN_DOWN

Patcher = Callable[[Any, str, Any], None]

#: Outcomes a test hands to a running Controlled (or Probe) main, by path: "finish" or "fail".
OUTCOME: dict[str, str] = {}


class Controlled(System):
    """A leaf whose main ends when the test says (`OUTCOME`): finish or fail."""

    async def main(self, ctx: Context) -> None:
        OUTCOME.pop(self.path, None)
        while True:
            await ctx.acheckpoint()
            outcome = OUTCOME.pop(self.path, None)
            if outcome == "fail":
                raise RuntimeError(f"planted failure in {self.path}")
            if outcome == "finish" or ctx.stopping:
                return
            await ctx.asleep(3600)


class Probe(Controlled):
    """A leaf with every hook: prepare fails when asked, main runs until told."""

    def prepare(self, fail: bool = False, **kwargs: Any) -> None:
        if fail:
            raise RuntimeError(f"{self.path}: prepare failed as asked")

    def shutdown(self) -> None:
        pass

    def teardown(self) -> None:
        pass


#: prepare fails on demand: the explorer tries both.
PROBE_ARGUMENTS: Mapping[str, Any] = {"activate": [{}, {"fail": True}], "enable": [{}, {"fail": True}]}


def tree() -> System:
    """A parent with two probes, the default fail-fast policy."""
    return System("app", subsystems=[Probe("a"), Probe("b")])


def has_gpu(system: Any, **kwargs: Any) -> bool:
    return bool(system.gpus > 0)


GPU = DEFAULT_LIFECYCLE.with_guard("start", conditions=has_gpu, name="gpu")


class Gpu(Probe, lifecycle=GPU):
    """A probe that may start only with a GPU (a guard)."""

    gpus: int = 1


def gpu_farm() -> System:
    return System("farm", subsystems=[Gpu("big", gpus=2), Gpu("small", gpus=0)])


def gpu_running_needs_gpu(root: System) -> None:
    for node in root.walk():
        if isinstance(node, Gpu):
            assert node.state != "running" or node.gpus > 0, f"{node.path} runs without a GPU"


def with_after(lifecycle: Lifecycle, callbacks: Mapping[str, Callable[..., Any]], name: str) -> Lifecycle:
    """`lifecycle` with an ``after`` callback added to the transitions of some triggers."""
    states, transitions = lifecycle.declaration()
    for t in transitions:
        if t["trigger"] in callbacks:
            t["after"] = [*t.get("after", ()), callbacks[t["trigger"]]]
    return Lifecycle(states, transitions, initial=lifecycle.initial, name=name)


# -- planted bugs --------------------------------------------------------------------------------


def _rewarm(system: Any, **kwargs: Any) -> None:
    system.prepare()  # bug: "re-warm the caches after a pause" runs prepare a second time


REWARM = with_after(DEFAULT_LIFECYCLE, {"resume": _rewarm}, "rewarm")


class Rewarm(Probe, lifecycle=REWARM):
    """Bug: its lifecycle runs prepare() again on every resume."""


PARK = DEFAULT_LIFECYCLE.extend(
    transitions=[{"trigger": "disable", "source": "ready", "dest": "disabled"}], name="park"
)
SIX = ("activate", "disable", "enable", "start", "suspend", "resume")


def _remember(trigger: str) -> Callable[..., None]:
    def remember(system: Any, **kwargs: Any) -> None:
        system.history.append(trigger)
        if tuple(system.history[-6:]) == SIX:  # bug: a lease taken before maintenance is stale
            raise RuntimeError("stale lease: resumed with the lease of before the maintenance")

    remember.__name__ = remember.__qualname__ = f"remember_{trigger}"
    return remember


PARK_SIX = with_after(PARK, {t: _remember(t) for t in PARK.triggers}, "park-six")


class Parked(Probe, lifecycle=PARK_SIX):
    """Bug: resume crashes after exactly activate, disable, enable, start, suspend."""

    history: list[str] = attrs.field(factory=list)


@attrs.frozen
class Isolate:
    """The naive policy: ignore terminated children while others are open."""

    terminates_siblings: bool = False

    def derive(self, counts: Mapping[str, int], total: int) -> str:
        terminated = counts.get("terminated", 0)
        if terminated and terminated < total - counts.get("completed", 0):
            rest = {k: v for k, v in counts.items() if k != "terminated"}
            return FAIL_FAST.derive(rest, total - terminated)
        return FAIL_FAST.derive(counts, total)


def isolated_tree() -> System:
    return System("app", policy=Isolate(), subsystems=[Probe("a"), Probe("b")])


@attrs.frozen
class Optimistic:
    """A policy with a bug: a parent counts as running as soon as one child runs."""

    terminates_siblings: bool = True

    def derive(self, counts: Mapping[str, int], total: int) -> str:
        if counts.get("running", 0) and not counts.get("terminated", 0):
            return "running"
        return FAIL_FAST.derive(counts, total)


def optimistic_tree() -> System:
    return System("app", policy=Optimistic(), subsystems=[Probe("a"), Probe("b")])


def mutate_unchecked_policy(setattr: Patcher) -> None:
    """Library mutant: a parent's policy is no longer checked when the tree is built."""
    setattr(System, "_check_policy", lambda self: None)


def mutate_resume_after_enable(setattr: Patcher) -> None:
    """Library mutant: a resume after an earlier disable/enable restores the state of then (ready)."""
    enabled: weakref.WeakSet[System] = weakref.WeakSet()
    enable, resume_part = System.enable, System._resume_part

    async def patched_enable(self: System, **kwargs: Any) -> str:
        state = await enable(self, **kwargs)
        if state == "ready":
            enabled.add(self)
        return state

    def patched_resume_part(self: System, route: Any) -> None:
        if self in enabled and not self.subsystems:
            self._state = "ready"
            self._moved("resume", "intermitted", "ready", None)
            return
        resume_part(self, route)

    setattr(System, "enable", patched_enable)
    setattr(System, "_resume_part", patched_resume_part)


def mutate_guard_bypass(setattr: Patcher) -> None:
    """Library mutant: a parent's start cascade moves its leaves without asking their guards."""
    start = System.start

    async def patched_start(self: System) -> str:
        if not self.subsystems:
            return await start(self)
        self.lifecycle.check(self, "start", {})  # its own guards only
        self._pending = "start"
        try:
            for layer in self._layers:
                for child in layer:
                    if child._state != "ready":
                        continue
                    if child.subsystems:
                        await child.start()
                    else:
                        child._commit("start")
                        child._launch()
            if self._own == "ready":
                self._part_move("start")
                self._launch()
                self._maybe_finish_own()
        finally:
            self._pending = None
        return self._state

    setattr(System, "start", patched_start)


def mutate_teardown_skipped(setattr: Patcher) -> None:
    """Library mutant: a termination with a cause (a failure) skips teardown."""
    terminate_own = System._terminate_own

    async def patched(self: System, cause: str | None) -> None:
        if cause is not None:
            self._flags |= _TORN_DOWN  # "it failed anyway: nothing to clean up"
        await terminate_own(self, cause)

    setattr(System, "_terminate_own", patched)


def mutate_refusal_trace(setattr: Patcher) -> None:
    """Library mutant: a refused trigger records the refusal as the system's cause."""
    begin = System._begin

    def patched(self: System, trigger: str, kwargs: Mapping[str, Any] | None = None) -> Any:
        try:
            return begin(self, trigger, kwargs or {})
        except TransitionNotAllowed:
            self._cause = f"refused {trigger}"
            raise

    setattr(System, "_begin", patched)


def mutate_enable_skips_prepare(setattr: Patcher) -> None:
    """Library mutant: enable treats the operator's word as preparation; main runs unprepared."""
    prepare_part = System._prepare_part

    async def patched(self: System, trigger: str, kwargs: Mapping[str, Any], route: Any) -> None:
        if trigger == "enable":
            self._flags |= _PREPARED
        await prepare_part(self, trigger, kwargs, route)

    setattr(System, "_prepare_part", patched)


@attrs.frozen
class Bug:
    """One planted bug, how to build the system that has it, and the trace the explorer must give."""

    name: str
    what: str
    target: Callable[[], System]
    #: the explorer's shortest counterexample, as ``str(step)``; None where only the
    #: exhaustive policy check sees the bug (the tree cannot reach it)
    trace: tuple[str, ...] | None
    arguments: Mapping[str, Any] = attrs.field(factory=dict)
    invariants: Sequence[Callable[[System], object]] = ()
    mutate: Callable[[Patcher], None] | None = None


CATALOGUE: tuple[Bug, ...] = (
    Bug(
        "hook runs twice",
        "a lifecycle callback re-runs prepare() on resume",
        Rewarm,
        ("activate()", "start()", "suspend()", "resume()"),
    ),
    Bug(
        "resume after disable/enable",
        "mutant: resume after an earlier enable moves intermitted -> ready",
        Probe,
        ("disable(cause='maintenance')", "enable()", "start()", "suspend()", "resume()"),
        mutate=mutate_resume_after_enable,
    ),
    Bug(
        "guard bypassed on one path",
        "mutant: a parent's start cascade skips its children's guards",
        gpu_farm,
        ("activate()", "start()"),
        mutate=mutate_guard_bypass,
    ),
    Bug(
        "isolate policy",
        "mutant: policies go unchecked, and the naive one ignores terminated children while others are open",
        isolated_tree,
        None,
        mutate=mutate_unchecked_policy,
    ),
    Bug(
        "optimistic policy",
        "mutant: policies go unchecked, and one makes a parent run as soon as one child runs",
        optimistic_tree,
        ("a.activate()", "a.start()"),
        mutate=mutate_unchecked_policy,
    ),
    Bug(
        "teardown skipped after a failure",
        "mutant: a termination with a cause skips teardown",
        Probe,
        ("terminate(cause='operator request')",),
        mutate=mutate_teardown_skipped,
    ),
    Bug(
        "6-trigger bug",
        "resume crashes after exactly activate, disable, enable, start, suspend",
        Parked,
        ("activate()", "disable(cause='maintenance')", "enable()", "start()", "suspend()", "resume()"),
    ),
    Bug(
        "refusal leaves a trace",
        "mutant: a refused trigger sets the cause",
        Probe,
        ("enable()",),
        mutate=mutate_refusal_trace,
    ),
    Bug(
        "main before prepare",
        "mutant: enable marks the system prepared without running prepare()",
        Probe,
        ("disable(cause='maintenance')", "enable()", "start()"),
        mutate=mutate_enable_skips_prepare,
    ),
)


@contextlib.contextmanager
def patched(bug: Bug) -> Iterator[None]:
    """Apply `bug`'s mutant for the duration (outside pytest's monkeypatch)."""
    saved: list[tuple[Any, str, Any]] = []

    def setattr_(owner: Any, name: str, value: Any) -> None:
        saved.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, value)

    try:
        if bug.mutate is not None:
            bug.mutate(setattr_)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)
