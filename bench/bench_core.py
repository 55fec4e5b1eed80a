"""Core benchmarks (DESIGN §10 rows 1-3), each against baselines measured in the same run.

1. one leaf trigger, no log handler: the compiled core step (`Lifecycle.step` /
   `Lifecycle.fire`) and an awaited trigger on a running `System` leaf, against a
   hand-written dict+assign floor, transitions (Machine, AsyncMachine,
   HierarchicalMachine; one per object, triggers on the model) and python-statemachine;
2. memory per idle leaf with many alive (tracemalloc), against the same peers;
3. creating many systems (10k, 50k, 100k: per-object cost shows linearity) against
   transitions' ``add_model`` on one shared Machine (quadratic: smaller sizes).

Run: ``python bench/bench_core.py [--quick]``.  Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from _util import (
    OPEN_STATES,
    TIMING_DEFAULTS,
    Table,
    abench,
    arguments,
    bench,
    ns,
    options,
    ratio,
    secs,
    size,
    statemachine_class,
    traced_bytes,
    transitions_flat,
    transitions_nested,
)

import statesys
from statesys import System

CORE_TARGET_NS = 1_000
AWAITED_TARGET_NS = 3_000
MEMORY_TARGET = 1024
CREATE_TARGET_S = 1.0
#: "linear": the per-object cost at the largest size may exceed the smallest's by this much.
LINEAR_SLACK = 1.25

ROW_STEP = "one leaf trigger: core `DEFAULT_LIFECYCLE.step`"
ROW_FIRE = "one leaf trigger: core `DEFAULT_LIFECYCLE.fire`"
ROW_AWAIT = "one leaf trigger: awaited `await leaf.suspend()` on a running `System`"
ROW_MEM = "memory per idle leaf `System`"
ROW_MEM_SUB = "memory per idle leaf, `System` subclass with one config field"
ROW_CREATE = "creating `System`s"
ROW_LINEAR = "creation is linear: per-object cost, largest / smallest size"
ROWS = (ROW_STEP, ROW_FIRE, ROW_AWAIT, ROW_MEM, ROW_MEM_SUB, ROW_CREATE, ROW_LINEAR)


class Sized(System):
    """A trivial subclass: one validated config field."""

    size: int = 1


class Floor:
    """The hand-written floor: one slot and a shared dict table."""

    __slots__ = ("state",)


FLOOR_TABLE: dict[tuple[str, str], str] = {
    (t["source"], t["trigger"]): t["dest"]
    for t in transitions_flat()["transitions"]
    if isinstance(t["source"], str)
}
FLOOR_TABLE.update({(s, "terminate"): "terminated" for s in OPEN_STATES})


class Model:
    """A plain model object for transitions (it writes ``state`` and the trigger methods on it)."""


class Slotted:
    """What the core step needs: an object with a ``_state`` slot."""

    __slots__ = ("_state",)


# -- row 1: one trigger ---------------------------------------------------------------------


def time_floor(opts: argparse.Namespace) -> float:
    obj = Floor()
    obj.state = "running"
    table = FLOOR_TABLE

    def loop(n: int) -> None:
        for _ in range(n):
            obj.state = table[(obj.state, "suspend")]
            obj.state = table[(obj.state, "resume")]

    return bench(loop, ops=2, repeat=opts.repeat, min_time=opts.min_time)


def time_step(opts: argparse.Namespace, *, fire: bool) -> float:
    lc = statesys.DEFAULT_LIFECYCLE
    obj = Slotted()
    obj._state = "running"
    empty: dict[str, Any] = {}
    step, fire_ = lc.step, lc.fire

    def loop_step(n: int) -> None:
        for _ in range(n):
            step(obj, "suspend", empty)
            step(obj, "resume", empty)

    def loop_fire(n: int) -> None:
        for _ in range(n):
            fire_(obj, "suspend")
            fire_(obj, "resume")

    return bench(loop_fire if fire else loop_step, ops=2, repeat=opts.repeat, min_time=opts.min_time)


def time_machine(opts: argparse.Namespace, kind: str) -> float:
    from transitions import Machine
    from transitions.extensions import HierarchicalMachine

    model = Model()
    if kind == "hsm":
        kwargs, running = transitions_nested()
        HierarchicalMachine(model=model, **{**kwargs, "initial": running})
    else:
        Machine(model=model, **{**transitions_flat(), "initial": "running"})
    suspend, resume = model.suspend, model.resume  # type: ignore[attr-defined]

    def loop(n: int) -> None:
        for _ in range(n):
            suspend()
            resume()

    return bench(loop, ops=2, repeat=opts.repeat, min_time=opts.min_time)


def time_statemachine(opts: argparse.Namespace) -> float:
    cls = statemachine_class()
    sm = cls()
    sm.activate()
    sm.start()
    suspend, resume = sm.suspend, sm.resume

    def loop(n: int) -> None:
        for _ in range(n):
            suspend()
            resume()

    return bench(loop, ops=2, repeat=opts.repeat, min_time=opts.min_time)


async def time_awaited(opts: argparse.Namespace) -> dict[str, float]:
    """Awaited triggers, all in one event loop: the statesys leaf and transitions' AsyncMachine."""
    from transitions.extensions.asyncio import AsyncMachine

    leaf = System("x")
    await leaf.activate()
    await leaf.start()
    assert leaf.state == "running", leaf.state

    async def loop_leaf(n: int) -> None:
        for _ in range(n):
            await leaf.suspend()
            await leaf.resume()

    model = Model()
    AsyncMachine(model=model, **{**transitions_flat(), "initial": "running"})

    async def loop_async_machine(n: int) -> None:
        for _ in range(n):
            await model.suspend()  # type: ignore[attr-defined]
            await model.resume()  # type: ignore[attr-defined]

    out = {
        "statesys": await abench(loop_leaf, ops=2, repeat=opts.repeat, min_time=opts.min_time),
        "async": await abench(loop_async_machine, ops=2, repeat=opts.repeat, min_time=opts.min_time),
    }
    await leaf.terminate()
    return out


# -- row 2: memory --------------------------------------------------------------------------


def memory(opts: argparse.Namespace) -> dict[str, tuple[float, int]]:
    """Bytes per idle object, and how many were alive, by contender."""
    from transitions import Machine

    flat = transitions_flat()
    sm_cls = statemachine_class()
    n, peers, shared = opts.n, opts.peer_n, opts.shared_n

    def machines_shared() -> Any:
        machine = Machine(model=None, **flat)
        for _ in range(shared):
            machine.add_model(Model())
        return machine

    builds: dict[str, tuple[Any, int]] = {
        "statesys": (lambda: [System(f"s{i}") for i in range(n)], n),
        "subclass": (lambda: [Sized(f"s{i}") for i in range(n)], n),
        "shared": (machines_shared, shared),
        "per_object": (lambda: [Machine(model=Model(), **flat) for _ in range(peers)], peers),
        "statemachine": (lambda: [sm_cls() for _ in range(peers)], peers),
    }
    out = {}
    for key, (build, count) in builds.items():
        used, kept = traced_bytes(build)
        del kept
        out[key] = (used / count, count)
    return out


# -- row 3: creation ------------------------------------------------------------------------


def creation(opts: argparse.Namespace) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
    """Seconds to create `System`s at each size (GC on, GC off), and for transitions' add_model."""
    import gc
    import time

    from transitions import Machine

    flat = transitions_flat()
    gc_on: dict[int, float] = {}
    gc_off: dict[int, float] = {}
    for count in opts.sizes:
        names = [f"s{i}" for i in range(count)]
        for out, collect in ((gc_on, True), (gc_off, False)):
            best = float("inf")
            for _ in range(opts.create_repeat):
                gc.collect()
                if not collect:
                    gc.disable()
                t0 = time.perf_counter_ns()
                systems = [System(name) for name in names]
                best = min(best, (time.perf_counter_ns() - t0) / 1e9)
                gc.enable()
                del systems
            out[count] = best
    theirs: dict[int, float] = {}
    for count in opts.add_model_sizes:
        machine = Machine(model=None, **flat)
        models = [Model() for _ in range(count)]
        gc.collect()
        t0 = time.perf_counter_ns()
        for model in models:
            machine.add_model(model)
        theirs[count] = (time.perf_counter_ns() - t0) / 1e9
        del machine, models
    return gc_on, gc_off, theirs


# -- the report -----------------------------------------------------------------------------


def _sizes_cell(times: dict[int, float], *, counts: bool = True) -> str:
    totals = " / ".join(secs(t) for t in times.values())
    each = " / ".join(ns(t * 1e9 / c) for c, t in times.items())
    if not counts:
        return f"{totals} ({each} each)"
    return f"{' / '.join(f'{c:,}' for c in times)}: {totals} ({each} each)"


def report(opts: argparse.Namespace) -> Table:
    table = Table("statesys core: one trigger, memory per leaf, creation")
    floor = time_floor(opts)
    step = time_step(opts, fire=False)
    fire = time_step(opts, fire=True)
    machine = time_machine(opts, "flat")
    hsm = time_machine(opts, "hsm")
    sm = time_statemachine(opts)
    awaited = asyncio.run(time_awaited(opts))
    peers = (
        f"floor (slots + dict + assign) {ns(floor)}; transitions Machine {ns(machine)}; "
        f"AsyncMachine {ns(awaited['async'])}; HierarchicalMachine {ns(hsm)}; "
        f"python-statemachine {ns(sm)}"
    )
    for row, value, cell in ((ROW_STEP, step, peers), (ROW_FIRE, fire, "as above")):
        table.add(
            row,
            ns(value),
            cell,
            f"{ratio(value, floor)} floor; {ratio(value, machine)} Machine",
            f"≤ {ns(CORE_TARGET_NS)}",
            value <= CORE_TARGET_NS,
        )
    value = awaited["statesys"]
    table.add(
        ROW_AWAIT,
        ns(value),
        "as above",
        f"{ratio(value, floor)} floor; {ratio(value, machine)} Machine; "
        f"{ratio(value, awaited['async'])} AsyncMachine",
        f"≤ {ns(AWAITED_TARGET_NS)}",
        value <= AWAITED_TARGET_NS,
    )

    mem = memory(opts)
    (shared, shared_n), (per_obj, per_n), (smm, sm_n) = mem["shared"], mem["per_object"], mem["statemachine"]
    mem_peers = (
        f"transitions shared Machine + `add_model` {size(shared)} ({shared_n:,} alive); "
        f"transitions Machine per object {size(per_obj)} ({per_n:,}); "
        f"python-statemachine {size(smm)} ({sm_n:,})"
    )
    for row, key, cell in ((ROW_MEM, "statesys", mem_peers), (ROW_MEM_SUB, "subclass", "as above")):
        value, count = mem[key]
        table.add(
            f"{row}, {count:,} alive",
            size(value),
            cell,
            f"{ratio(value, shared)} shared Machine; {ratio(value, per_obj)} Machine per object; "
            f"{ratio(value, smm)} python-statemachine",
            f"≤ {size(MEMORY_TARGET)}",
            value <= MEMORY_TARGET,
        )

    ours, ours_no_gc, theirs = creation(opts)
    largest, smallest = max(ours), min(ours)
    common = [c for c in theirs if c in ours]
    if common:
        versus = f"{ratio(ours[common[-1]], theirs[common[-1]])} `add_model` at {common[-1]:,}"
    else:  # no common size (--quick): compare per-object costs
        versus = f"{ratio(ours[smallest] / smallest, theirs[max(theirs)] / max(theirs))} per object"
    table.add(
        f"{ROW_CREATE}: {' / '.join(f'{c:,}' for c in ours)}",
        _sizes_cell(ours, counts=False),
        "transitions shared Machine `add_model` " + _sizes_cell(theirs),
        versus,
        f"≤ {secs(CREATE_TARGET_S)} per 100,000",
        ours[largest] <= CREATE_TARGET_S * largest / 100_000,
    )

    def growth(times: dict[int, float]) -> float:
        big, small = max(times), min(times)
        return (times[big] / big) / (times[small] / small)

    t_big, t_small = max(theirs), min(theirs)
    table.add(
        ROW_LINEAR,
        f"{growth(ours_no_gc):.2f}× GC off, {growth(ours):.2f}× GC on ({largest:,} vs {smallest:,})",
        f"transitions `add_model` {growth(theirs):.2f}× GC on ({t_big:,} vs {t_small:,})",
        "",
        f"≤ {LINEAR_SLACK}× GC off",
        growth(ours_no_gc) <= LINEAR_SLACK,
    )

    table.note(
        f"Times: `time.perf_counter_ns`, best of {opts.repeat} runs of a loop sized to last ≥ "
        f"{opts.min_time} s, GC collected before and disabled during each run; one trigger = half of "
        "a suspend + resume pair, from running. No handler on the `statesys` logger (unobserved)."
    )
    table.note(
        "Peers: transitions 0.9 with one Machine per model object (triggers called on the model), "
        "`auto_transitions=False`; HierarchicalMachine uses the nested default lifecycle; "
        "python-statemachine 3 `StateMachine` (sync engine) with the same 7 states and 8 events."
    )
    table.note(
        "Memory: `tracemalloc`, Python allocations kept alive by the list of objects (list slot and, for "
        "statesys, a unique name string included), divided by the count. The shared transitions Machine "
        f"is measured with {shared_n:,} models because `add_model` is quadratic."
    )
    table.note(
        f"Creation: best of {opts.create_repeat} runs, GC enabled (as in an application) unless said, "
        "names built beforehand; with GC on, CPython's collections of the growing heap add to the "
        "per-object cost of any large allocation, so linearity is judged with GC off. transitions "
        "`add_model`: one run per size, GC on, models built beforehand."
    )
    return table


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = arguments(__doc__, "small sizes and short runs (smoke test)", timing=True)
    parser.add_argument("--n", type=int, help="statesys leaves alive for the memory row (100,000)")
    parser.add_argument("--peer-n", type=int, help="per-object peers alive for the memory row (100,000)")
    parser.add_argument("--shared-n", type=int, help="models on the shared transitions Machine (10,000)")
    parser.add_argument("--sizes", type=int, nargs="+", help="System counts to create (10k 50k 100k)")
    parser.add_argument("--add-model-sizes", type=int, nargs="+", help="add_model counts (1k 5k 10k)")
    defaults: dict[str, tuple[Any, Any]] = {
        **TIMING_DEFAULTS,
        "n": (2_000, 100_000),
        "peer_n": (300, 100_000),
        "shared_n": (200, 10_000),
        "sizes": ([1_000, 2_000, 4_000], [10_000, 50_000, 100_000]),
        "add_model_sizes": ([100, 200, 400], [1_000, 5_000, 10_000]),
    }
    opts = options(parser, argv, defaults)
    opts.sizes = sorted(set(opts.sizes))
    opts.add_model_sizes = sorted(set(opts.add_model_sizes))
    opts.create_repeat = 1 if opts.quick else 3
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse(argv)
    logger = logging.getLogger("statesys")
    if logger.isEnabledFor(logging.INFO):
        print("warning: the 'statesys' logger is enabled for INFO; triggers build and log events")
    print(report(opts).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
