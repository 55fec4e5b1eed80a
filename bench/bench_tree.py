"""Tree benchmark (DESIGN §10 row 4): one leaf event with its ancestors re-derived.

Trees of 10, 1,000 and 100,000 systems, flat (one root, N-1 leaves) and balanced
(every parent has `fanout` children, exactly N systems), are built with
``System(name, subsystems=[...])`` and brought to running inside one event loop.
Then the deepest leaf's ``await leaf.suspend(); await leaf.resume()`` is timed:

* ancestors unchanged: its siblings keep running, so each ancestor re-derives and stays;
* every ancestor changes: after ``await root.suspend()`` the leaf's resume makes every
  ancestor running again and its suspend makes them intermitted, all the way up.

The target is that the 100k tree costs at most 2x the 10-system tree.  A pure chain
(each parent has one child) climbs its whole depth by design: it is reported
separately, per level.  Memory per system in the largest tree: tracemalloc over a
separate construction (and over its bring-up).

Run: ``python bench/bench_tree.py [--quick]``.  Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from _util import (
    TIMING_DEFAULTS,
    Table,
    abench,
    arguments,
    check_sizes,
    ns,
    options,
    secs,
    size,
    traced_bytes,
)

from statesys import System

TREE_RATIO_TARGET = 2.0
MEMORY_TARGET = 1024
#: "O(depth)": the per-level cost at the deepest chain may exceed the shallowest's by this much.
CHAIN_SLACK = 2.0
#: "linear": per-system construction cost at the largest tree over the next size down.
BUILD_SLACK = 1.25

ROW_STEADY = "leaf event, ancestors unchanged"
ROW_CLIMB = "leaf event, every ancestor changes"
ROW_MEMORY = "memory per system"
ROW_BUILD = "tree construction is linear: per-system cost"
ROW_BRINGUP = "bring-up"


def tree(shape: str, count: int, fanout: int) -> tuple[System, System, int]:
    """A tree of `count` systems: its root, its deepest leaf and that leaf's depth."""
    if shape == "flat":
        leaves = [System(f"s{i}") for i in range(1, count)]
        return System("root", subsystems=leaves), leaves[-1], 1
    if shape == "chain":
        leaf = node = System(f"s{count - 1}")
        for i in range(count - 2, -1, -1):
            node = System(f"s{i}", subsystems=[node])
        return node, leaf, count - 1
    # balanced, heap layout: node i's children are fanout*i+1 .. fanout*i+fanout
    nodes: list[System] = [None] * count  # type: ignore[list-item]
    for i in range(count - 1, -1, -1):
        first = fanout * i + 1
        kids = nodes[first : min(first + fanout, count)]
        nodes[i] = System(f"s{i}", subsystems=kids) if kids else System(f"s{i}")
    depth, i = 0, count - 1
    while i:
        i, depth = (i - 1) // fanout, depth + 1
    return nodes[0], nodes[-1], depth


class Result:
    """What one tree measured."""

    def __init__(self, shape: str, count: int, depth: int) -> None:
        self.shape, self.count, self.depth = shape, count, depth
        self.build = self.activate = self.start = self.suspend_all = 0.0
        self.steady: float | str = "n/a"
        self.climb: float | str = "n/a"
        self.problems: list[str] = []


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}" + (f": {exc}" if not isinstance(exc, RecursionError) else "")


def suspend_resume(leaf: System) -> Callable[[int], Awaitable[None]]:
    """An `abench` loop: `n` rounds of suspending, then resuming `leaf` (2 events a round)."""

    async def loop(n: int) -> None:
        for _ in range(n):
            await leaf.suspend()
            await leaf.resume()

    return loop


async def _measure(root: System, leaf: System, result: Result, opts: argparse.Namespace) -> None:
    """Bring the tree up, time both kinds of leaf event; a failure is recorded, not raised."""

    steady = suspend_resume(leaf)

    async def climb(n: int) -> None:
        for _ in range(n):
            await leaf.resume()
            await leaf.suspend()

    phase = "bring-up"
    try:
        t0 = time.perf_counter()
        await root.activate()
        t1 = time.perf_counter()
        await root.start()
        t2 = time.perf_counter()
        result.activate, result.start = t1 - t0, t2 - t1
        if root.state != "running" or leaf.state != "running":
            result.problems.append(f"after bring-up root is {root.state}, leaf {leaf.state}")
            return
        phase = "steady"
        await leaf.suspend()
        # in a chain the leaf is its parent's only child: by rule 6 its suspension
        # suspends every ancestor, so there both rows measure a climbing event
        if result.shape != "chain" and root.state != "running":
            result.problems.append(f"a leaf suspend moved the root to {root.state}")
        await leaf.resume()
        result.steady = await abench(steady, ops=2, repeat=opts.repeat, min_time=opts.min_time)
        phase = "root suspend"
        t3 = time.perf_counter()
        await root.suspend()
        result.suspend_all = time.perf_counter() - t3
        phase = "climb"
        await leaf.resume()
        moved = root.state == "running"
        await leaf.suspend()
        if not (moved and root.state == "intermitted"):
            result.problems.append("the leaf's events did not move the root")
        result.climb = await abench(climb, ops=2, repeat=opts.repeat, min_time=opts.min_time)
    except Exception as exc:  # a benchmark reports a failure and goes on
        text = _failure(exc)
        if phase in ("bring-up", "steady"):
            result.steady = text
        result.climb = text
        result.problems.append(f"{phase} raised {text}; then root is {root.state!r}, leaf {leaf.state!r}")


def measure(shape: str, count: int, opts: argparse.Namespace) -> Result:
    t0 = time.perf_counter()
    root, leaf, depth = tree(shape, count, opts.fanout)
    result = Result(shape, count, depth)
    result.build = time.perf_counter() - t0
    asyncio.run(_measure(root, leaf, result, opts))
    if not opts.quick:
        print(
            f"{shape} {count:,}: build {secs(result.build)}, activate {secs(result.activate)}, "
            f"start {secs(result.start)}, events {_cost(result.steady)} / {_cost(result.climb)}",
            file=sys.stderr,
        )
    return result


def memory(shape: str, count: int, opts: argparse.Namespace) -> tuple[float, float]:
    """Bytes per system: kept alive by construction, and kept after bring-up too."""
    import gc
    import tracemalloc

    built, (root, _, _) = traced_bytes(lambda: tree(shape, count, opts.fanout))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]

        async def bring_up() -> None:
            await root.activate()
            await root.start()

        asyncio.run(bring_up())
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return built / count, (built + grown) / count


async def lone_leaf(opts: argparse.Namespace) -> float:
    leaf = System("x")
    await leaf.activate()
    await leaf.start()
    return await abench(suspend_resume(leaf), ops=2, repeat=opts.repeat, min_time=opts.min_time)


# -- the report -----------------------------------------------------------------------------


def _cost(value: float | str) -> str:
    return ns(value) if isinstance(value, float) else value


def _label(shape: str, opts: argparse.Namespace) -> str:
    return {"flat": "flat", "chain": "chain"}.get(shape, f"fan-out {opts.fanout}")


def _series(results: list[Result], attr: str) -> str:
    return " / ".join(f"{r.count:,}: {_cost(getattr(r, attr))}" for r in results)


def report(opts: argparse.Namespace) -> Table:
    table = Table("statesys trees: one leaf event with its ancestors re-derived")
    alone = asyncio.run(lone_leaf(opts))
    problems: list[str] = []
    by_shape: dict[str, list[Result]] = {}
    for shape in ("flat", "fanout"):
        by_shape[shape] = [measure(shape, count, opts) for count in opts.sizes]
    by_shape["chain"] = [measure("chain", count, opts) for count in opts.chain_sizes]
    for results in by_shape.values():
        for r in results:
            problems += [f"{_label(r.shape, opts)} {r.count:,}: {p}" for p in r.problems]

    for shape in ("flat", "fanout"):
        results = by_shape[shape]
        small, big = results[0], results[-1]
        depths = "/".join(str(r.depth) for r in results)
        for row, attr in ((ROW_STEADY, "steady"), (ROW_CLIMB, "climb")):
            lo, hi = getattr(small, attr), getattr(big, attr)
            if isinstance(lo, float) and isinstance(hi, float):
                ok = hi <= TREE_RATIO_TARGET * lo
                ratio = f"{hi / lo:.2f}× ({big.count:,} / {small.count:,})"
            else:
                ok, ratio = False, "n/a"
            table.add(
                f"{row}: {_label(shape, opts)} tree (depth {depths})",
                _series(results, attr),
                f"{small.count}-system tree {_cost(lo)}; lone leaf {ns(alone)}",
                ratio,
                f"≤ {TREE_RATIO_TARGET:g}×",
                ok,
            )

    chain = by_shape["chain"]
    for row, attr in ((ROW_STEADY, "steady"), (ROW_CLIMB, "climb")):
        timed = [r for r in chain if isinstance(getattr(r, attr), float)]
        ok: bool | None = None
        per_level = "n/a"
        if len(timed) >= 2:
            lo, hi = timed[0], timed[-1]
            lo_per, hi_per = getattr(lo, attr) / lo.depth, getattr(hi, attr) / hi.depth
            per_level = f"{ns(lo_per)} → {ns(hi_per)} per level (depth {lo.depth} → {hi.depth})"
            ok = hi_per <= CHAIN_SLACK * lo_per
        if len(timed) < len(chain):
            ok = False
        table.add(
            f"{row}: chain (depth {'/'.join(str(r.depth) for r in chain)})",
            _series(chain, attr),
            f"lone leaf {ns(alone)}",
            per_level,
            f"O(depth): per level ≤ {CHAIN_SLACK:g}× the shallowest's",
            ok,
        )

    if opts.memory:
        cells, worst = [], 0.0
        for shape in ("flat", "fanout"):
            built, running = memory(shape, opts.sizes[-1], opts)
            worst = max(worst, built)
            cells.append(f"{_label(shape, opts)}: {size(built)} built, {size(running)} running")
        table.add(
            f"{ROW_MEMORY}, {opts.sizes[-1]:,}-system tree",
            "; ".join(cells),
            "",
            "",
            f"≤ {size(MEMORY_TARGET)} built",
            worst <= MEMORY_TARGET,
        )

    # construction must stay linear (DESIGN §10 row 3): per-system cost, two largest sizes
    cells, worst = [], 0.0
    for shape in ("flat", "fanout"):
        lo, hi = by_shape[shape][-2:] if len(by_shape[shape]) > 1 else by_shape[shape] * 2
        growth = (hi.build / hi.count) / (lo.build / lo.count)
        worst = max(worst, growth)
        cells.append(
            f"{_label(shape, opts)}: {ns(lo.build * 1e9 / lo.count)} → {ns(hi.build * 1e9 / hi.count)} "
            f"({growth:.2f}×)"
        )
    table.add(
        f"{ROW_BUILD}, {lo.count:,} → {hi.count:,} systems",
        "; ".join(cells),
        "",
        "",
        f"≤ {BUILD_SLACK:g}× (linear)",
        worst <= BUILD_SLACK,
    )

    cells = []
    for shape in ("flat", "fanout"):
        r = by_shape[shape][-1]
        cells.append(
            f"{_label(shape, opts)}: build {secs(r.build)}, activate {secs(r.activate)}, "
            f"start {secs(r.start)} (root suspend cascade {secs(r.suspend_all)})"
        )
    table.add(f"{ROW_BRINGUP}, {opts.sizes[-1]:,}-system tree", "; ".join(cells), "", "", "none", None)

    table.note(
        f"Per event: half of a suspend + resume pair on the deepest leaf, `time.perf_counter_ns`, best of "
        f"{opts.repeat} runs of a loop lasting ≥ {opts.min_time} s, GC collected before and disabled "
        "during each run, no handler on the `statesys` logger. Baseline: the smallest tree and a lone "
        "running leaf, measured in the same run."
    )
    table.note(
        f"Trees: flat = one root and N-1 leaves; fan-out {opts.fanout} = balanced, exactly N systems "
        "(heap layout); chain = each parent has one child. No system has a main."
    )
    if opts.memory:
        table.note(
            "Memory: `tracemalloc` over a separate construction of the largest trees (unique names "
            "included), then over its bring-up (activate + start): bytes kept alive / systems."
        )
    table.note(
        "Bring-up: wall time of the timed run (build untraced; `await root.activate()`, then "
        "`await root.start()`)."
    )
    for problem in problems:
        table.note(f"problem: {problem}")
    return table


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = arguments(__doc__, "small sizes and short runs (smoke test)", timing=True)
    parser.add_argument("--sizes", type=int, nargs="+", help="tree sizes (10 1000 100000)")
    parser.add_argument("--chain-sizes", type=int, nargs="+", help="chain lengths (10 100 300 1000)")
    parser.add_argument("--fanout", type=int, default=10, help="children per parent, balanced trees (10)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory pass")
    defaults: dict[str, tuple[Any, Any]] = {
        **TIMING_DEFAULTS,
        "sizes": ([10, 100, 1_000], [10, 1_000, 100_000]),
        "chain_sizes": ([5, 10, 40], [10, 100, 300, 1_000]),
    }
    opts = options(parser, argv, defaults)
    if opts.fanout < 2:
        raise SystemExit(f"--fanout must be >= 2, got {opts.fanout}")
    opts.sizes = check_sizes(opts.sizes)
    opts.chain_sizes = check_sizes(opts.chain_sizes)
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse(argv)
    if logging.getLogger("statesys").isEnabledFor(logging.INFO):
        print("warning: the 'statesys' logger is enabled for INFO; triggers build and log events")
    print(report(opts).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
