"""Shared helpers for the benchmarks: timing, memory, baselines' declarations, tables.

Timing: ``time.perf_counter_ns``, the GC collected before and disabled during each
run, the loop size grown until one run lasts `min_time`, best of `repeat` runs.
Memory: ``tracemalloc`` (Python allocations traced while the objects are built and
kept alive), never RSS.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: The default lifecycle as 7 flat states, for peers that have no nested states.
FLAT_STATES = ("initial", "ready", "running", "disabled", "intermitted", "completed", "terminated")
OPEN_STATES = ("initial", "ready", "running", "disabled", "intermitted")


# -- timing ---------------------------------------------------------------------------


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect, then keep the cyclic GC off for the timed region."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _grow(n: int, dt: int, min_time: float) -> int:
    """The next loop size: tenfold while runs are too short to extrapolate, then aimed at `min_time`."""
    if dt < 1_000_000:
        return n * 10
    return max(n + 1, int(n * min_time * 1e9 * 1.1 / dt))


class _Runs:
    """The runs `bench` and `abench` time: the loop size grows until one run lasts
    `min_time` (or reaches 10**8), then `repeat - 1` more runs of that size; the best counts."""

    def __init__(self, repeat: int, min_time: float) -> None:
        self.n = 1
        self.best = 0
        self.more = True
        self._left = repeat - 1
        self._min_time = min_time
        self._sized = False

    def record(self, dt: int) -> None:
        """Take the nanoseconds of the run of size `n` just timed."""
        if self._sized:
            self.best = min(self.best, dt)
            self._left -= 1
        elif dt >= self._min_time * 1e9 or self.n >= 10**8:
            self.best, self._sized = dt, True
        else:
            self.n = _grow(self.n, dt, self._min_time)
        self.more = not self._sized or self._left > 0


def bench(loop: Callable[[int], object], *, ops: int = 1, repeat: int = 5, min_time: float = 0.2) -> float:
    """Best nanoseconds per operation of ``loop(n)``, which performs ``n * ops`` operations."""
    runs = _Runs(repeat, min_time)
    while runs.more:
        with gc_paused():
            t0 = time.perf_counter_ns()
            loop(runs.n)
            runs.record(time.perf_counter_ns() - t0)
    return runs.best / (runs.n * ops)


async def abench(
    loop: Callable[[int], Awaitable[object]], *, ops: int = 1, repeat: int = 5, min_time: float = 0.2
) -> float:
    """`bench` for a coroutine loop, run inside the caller's event loop."""
    runs = _Runs(repeat, min_time)
    while runs.more:
        with gc_paused():
            t0 = time.perf_counter_ns()
            await loop(runs.n)
            runs.record(time.perf_counter_ns() - t0)
    return runs.best / (runs.n * ops)


def wall(fn: Callable[[], object], *, repeat: int = 1, gc_off: bool = False) -> float:
    """Best seconds of `repeat` calls of `fn` (the result of each call is dropped after timing)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        if gc_off:
            gc.disable()
        try:
            t0 = time.perf_counter_ns()
            kept = fn()
            best = min(best, (time.perf_counter_ns() - t0) / 1e9)
        finally:
            if gc_off:
                gc.enable()
        del kept
    return best


def traced_bytes(build: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes that ``build()``'s result keeps alive (tracemalloc), and the result."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before, kept


# -- formatting -----------------------------------------------------------------------


def ns(value: float) -> str:
    """A duration given in nanoseconds, in the unit that reads best."""
    if value < 1_000:
        return f"{value:.0f} ns"
    if value < 1_000_000:
        return f"{value / 1e3:.2f} µs"
    if value < 1e9:
        return f"{value / 1e6:.2f} ms"
    return f"{value / 1e9:.2f} s"


def secs(value: float) -> str:
    return ns(value * 1e9)


def size(value: float) -> str:
    if value < 1024:
        return f"{value:.0f} B"
    return f"{value / 1024:.1f} KB"


def ratio(value: float, base: float) -> str:
    if base <= 0:
        return "n/a"
    r = value / base
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×"


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else "yes" if ok else "**no**"


class Table:
    """A Markdown table that can be pasted into the README as is."""

    HEADER = ("what", "statesys", "baseline(s)", "ratio", "target", "met?")

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[tuple[str, ...]] = []
        self.notes: list[str] = []

    def add(
        self, what: str, statesys: str, baselines: str, ratios: str, target: str, ok: bool | None
    ) -> None:
        self.rows.append((what, statesys, baselines, ratios, target, met(ok)))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self) -> str:
        lines = [f"### {self.title}", "", environment(), ""]
        lines.append("| " + " | ".join(self.HEADER) + " |")
        lines.append("|" + "|".join("---" for _ in self.HEADER) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def environment() -> str:
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    )


# -- peers' declarations of the default lifecycle ------------------------------------------


def transitions_flat() -> dict[str, Any]:
    """Machine keyword arguments: the default lifecycle with its 7 states, flat."""
    edges = [
        ("activate", "initial", "ready"),
        ("disable", "initial", "disabled"),
        ("enable", "disabled", "ready"),
        ("start", "ready", "running"),
        ("complete", "running", "completed"),
        ("suspend", "running", "intermitted"),
        ("resume", "intermitted", "running"),
    ]
    transitions: list[dict[str, Any]] = [{"trigger": t, "source": s, "dest": d} for t, s, d in edges]
    transitions.append({"trigger": "terminate", "source": list(OPEN_STATES), "dest": "terminated"})
    return {
        "states": list(FLAT_STATES),
        "transitions": transitions,
        "initial": "initial",
        "auto_transitions": False,
    }


def transitions_nested() -> tuple[dict[str, Any], str]:
    """HierarchicalMachine keyword arguments for the nested default lifecycle, and 'running''s name."""
    from statesys import DEFAULT_LIFECYCLE

    lc = DEFAULT_LIFECYCLE

    def path(name: str) -> str:
        if name in lc.states:
            return "_".join((*lc.group_path(name), name))
        leaf = lc.groups[name][0]
        enclosing = lc.group_path(leaf)
        return "_".join(enclosing[: enclosing.index(name) + 1])

    states, transitions = lc.declaration()
    for t in transitions:
        t.pop("route", None)
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        t["source"] = [path(s) for s in sources]
        t["dest"] = path(t["dest"])
    kwargs = {
        "states": states,
        "transitions": transitions,
        "initial": path(lc.initial),
        "auto_transitions": False,
    }
    return kwargs, path("running")


def statemachine_class() -> type:
    """python-statemachine's class for the same 7 states and 8 triggers."""
    from statemachine import State, StateMachine

    class DefaultLifecycle(StateMachine):  # type: ignore[misc]
        initial = State(initial=True)
        ready = State()
        running = State()
        disabled = State()
        intermitted = State()
        completed = State(final=True)
        terminated = State(final=True)

        activate = initial.to(ready)
        disable = initial.to(disabled)
        enable = disabled.to(ready)
        start = ready.to(running)
        complete = running.to(completed)
        suspend = running.to(intermitted)
        resume = intermitted.to(running)
        terminate = (
            initial.to(terminated)
            | ready.to(terminated)
            | running.to(terminated)
            | disabled.to(terminated)
            | intermitted.to(terminated)
        )

    return DefaultLifecycle


def check_sizes(sizes: Sequence[int]) -> list[int]:
    out = sorted(set(sizes))
    if not out or out[0] < 2:
        raise SystemExit(f"sizes must be >= 2, got {list(sizes)}")
    return out


# -- command line ---------------------------------------------------------------------------

#: Defaults, ``(quick, full)``, of the options `arguments` adds with ``timing=True``.
TIMING_DEFAULTS: Mapping[str, tuple[Any, Any]] = {"repeat": (2, 5), "min_time": (0.005, 0.2)}


def arguments(doc: str, quick: str, *, timing: bool = False) -> argparse.ArgumentParser:
    """A benchmark's parser, described by `doc`'s first paragraph: ``--quick`` (`quick` says what it
    does) and, with `timing`, `bench`'s ``--repeat`` and ``--min-time``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    if timing:
        parser.add_argument("--repeat", type=int, help="timed runs per measurement; the best counts (5)")
        parser.add_argument("--min-time", type=float, help="seconds one timed run lasts at least (0.2)")
    return parser


def options(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, defaults: Mapping[str, tuple[Any, Any]]
) -> argparse.Namespace:
    """`argv` parsed; an option left unset takes its default, ``(quick, full)`` by ``--quick``."""
    opts = parser.parse_args(argv)
    for key, (quick, full) in defaults.items():
        if getattr(opts, key) is None:
            setattr(opts, key, quick if opts.quick else full)
    return opts
