"""Process executor benchmarks (DESIGN §10 rows 6-7), against baselines measured in the same run.

1. many process systems each sleeping 1 s (100 by default), launched at once and
   closed, through `ProcessRunner` (its fork server cold, then warm), against bare
   ``multiprocessing`` with fork (the floor: no isolation, and unsafe under a
   running loop), forkserver (preloading this module) and spawn;
2. cooperative suspend → main paused (the time main went on after the request)
   and terminate → main ended, against one message round trip over a pipe to a
   forked process, the floor of any cross-process control;
3. ``ctx.checkpoint()`` when nothing is requested, against an empty method call.

Run: ``python bench/bench_process.py [--quick]``.  Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import mmap
import multiprocessing
import os
import statistics
import struct
import sys
import tempfile
import time
import timeit
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _util import Table, arguments, options, ratio, secs

# statesys is imported inside the functions that use it, so that the baselines'
# children (which import this module) pay for the interpreter and nothing more.
if TYPE_CHECKING:
    from statesys.runtime._process import ProcessContext

ROW_COLD = "process systems, fork server started on demand"
ROW_WARM = "process systems, fork server already running"
ROW_SUSPEND = "cooperative suspend → main paused"
ROW_STOP = "terminate → main ended (cooperative main)"
ROW_CHECKPOINT = "`ctx.checkpoint()`, nothing requested"
ROWS = (ROW_COLD, ROW_WARM, ROW_SUSPEND, ROW_STOP, ROW_CHECKPOINT)

WALL_TARGET_S = 2.0  # for 100 systems sleeping 1 s
SUSPEND_TARGET_S = 0.010
STOP_SLACK_S = 0.050  # terminate: ≤ grace + 50 ms
GRACE = 1.0


class Sleeper:
    """A System stand-in whose main sleeps ``seconds``; workers import it by module name."""

    suspend_mode = "cooperative"

    def __init__(self, name: str, **config: Any) -> None:
        self.name = name
        self.path = f"bench/{name}"
        self.config = config

    def _remote_spec(self) -> tuple[type, str, dict[str, Any]]:
        return type(self), self.name, dict(self.config)

    def main(self) -> None:
        time.sleep(self.config["seconds"])


class Ticker(Sleeper):
    """Stamps the time into a shared file at every checkpoint, until terminated."""

    def main(self, ctx: ProcessContext) -> None:  # type: ignore[override]
        with open(self.config["stamps"], "r+b") as f, mmap.mmap(f.fileno(), 8) as shared:
            while True:
                ctx.checkpoint()
                shared[:8] = struct.pack("d", time.monotonic())


# -- many sleepers ----------------------------------------------------------------------


def bare_multiprocessing(method: str, n: int, seconds: float) -> float:
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload([__name__])
    start = time.perf_counter()
    procs = [ctx.Process(target=time.sleep, args=(seconds,)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return time.perf_counter() - start


def _stop_multiprocessing_helpers() -> None:
    """Stop the forkserver and resource tracker the baselines started (private API, hence guarded)."""
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    helpers = (multiprocessing.forkserver._forkserver, multiprocessing.resource_tracker._resource_tracker)
    for helper in helpers:
        with contextlib.suppress(Exception):
            helper._stop()  # type: ignore[attr-defined]


async def _runners(n: int, seconds: float) -> float:
    from statesys.runtime._process import ProcessRunner

    start = time.perf_counter()
    runners = [ProcessRunner(Sleeper(f"s{i}", seconds=seconds)) for i in range(n)]
    await asyncio.gather(*(r.launch() for r in runners))
    await asyncio.gather(*(r.close() for r in runners))
    return time.perf_counter() - start


# -- control latency --------------------------------------------------------------------


def _echo(conn: Any) -> None:
    while conn.recv_bytes():
        conn.send_bytes(b"k")


def pipe_round_trip(rounds: int) -> float:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_echo, args=(child,))
    proc.start()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        parent.send_bytes(b"p")
        parent.recv_bytes()
        samples.append(time.perf_counter() - t)
    parent.send_bytes(b"")
    proc.join()
    return statistics.median(samples)


def _stamp(path: Path) -> float:
    value: float = struct.unpack("d", path.read_bytes())[0]
    return value


async def _control(stamps: Path, rounds: int) -> tuple[float, float]:
    """Median suspend latency (request → last tick) and stop time (request → main ended)."""
    from statesys.runtime._process import ProcessRunner

    suspend, stop = [], []
    for i in range(rounds):
        stamps.write_bytes(bytes(8))
        runner = ProcessRunner(Ticker(f"t{i}", stamps=str(stamps)))
        main = runner.launch()
        while _stamp(stamps) == 0:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        asked = time.monotonic()
        runner.suspend()
        await asyncio.sleep(0.05)
        suspend.append(max(0.0, _stamp(stamps) - asked))
        runner.resume()
        await asyncio.sleep(0.02)
        start = time.perf_counter()
        note = await runner.stop(GRACE)
        stop.append(time.perf_counter() - start)
        assert note is None, note
        with contextlib.suppress(BaseException):
            await main
        await runner.close()
    return statistics.median(suspend), statistics.median(stop)


# -- checkpoint -------------------------------------------------------------------------


class _Empty:
    def checkpoint(self) -> None:
        pass


def checkpoint_cost(number: int) -> tuple[float, float]:
    from statesys.runtime._process import ProcessContext

    page = mmap.mmap(-1, mmap.PAGESIZE)
    ctx, empty = ProcessContext("bench/x", page), _Empty()
    ours = min(timeit.repeat(ctx.checkpoint, number=number, repeat=5)) / number
    base = min(timeit.repeat(empty.checkpoint, number=number, repeat=5)) / number
    return ours, base


# -- report -----------------------------------------------------------------------------


def report(opts: argparse.Namespace) -> Table:
    from statesys.runtime import _forkserver

    n, seconds = opts.n, opts.seconds
    table = Table(f"statesys process executor: {n} systems sleeping {seconds:g} s, control latency")
    # Baselines first, while this process has no fork server of ours yet.
    fork = bare_multiprocessing("fork", n, seconds)
    forkserver = bare_multiprocessing("forkserver", n, seconds)
    spawn = bare_multiprocessing("spawn", n, seconds)
    _stop_multiprocessing_helpers()
    _forkserver.shutdown()  # "cold" means cold, even when run inside a larger process
    cold = asyncio.run(_runners(n, seconds))
    warm = asyncio.run(_runners(n, seconds))
    baselines = f"multiprocessing fork {secs(fork)}; forkserver {secs(forkserver)}; spawn {secs(spawn)}"
    reference = n == 100 and seconds == 1.0  # the size the target is set for
    for row, value in ((ROW_COLD, cold), (ROW_WARM, warm)):
        table.add(
            f"{row}: {n} × {seconds:g} s",
            secs(value),
            baselines if row == ROW_COLD else "as above",
            f"{ratio(value, fork)} fork; {ratio(value, forkserver)} forkserver; {ratio(value, spawn)} spawn",
            f"≤ {secs(WALL_TARGET_S)} (100 × 1 s)" if reference else "",
            value <= WALL_TARGET_S if reference else None,
        )

    rtt = pipe_round_trip(opts.rounds * 20)
    with tempfile.TemporaryDirectory() as tmp:
        suspend, stop = asyncio.run(_control(Path(tmp) / "stamps", opts.rounds))
    table.add(
        ROW_SUSPEND,
        secs(suspend),
        f"pipe round trip to a forked process {secs(rtt)}",
        f"{ratio(suspend, rtt)} round trip",
        f"≤ {secs(SUSPEND_TARGET_S)}",
        suspend <= SUSPEND_TARGET_S,
    )
    table.add(
        ROW_STOP,
        secs(stop),
        "as above",
        f"{ratio(stop, rtt)} round trip",
        f"≤ grace + {secs(STOP_SLACK_S)}",
        stop <= GRACE + STOP_SLACK_S,
    )

    ours, base = checkpoint_cost(opts.number)
    table.add(ROW_CHECKPOINT, secs(ours), f"empty method call {secs(base)}", ratio(ours, base), "", None)
    _forkserver.shutdown()

    table.note(
        "Wall time from the first launch until every worker is closed and reaped; the workers' mains "
        "sleep with `time.sleep`. Baselines start and join bare `multiprocessing.Process`es; the "
        "forkserver baseline preloads this module, as the fork server of statesys does."
    )
    table.note(
        f"Control: median of {opts.rounds} workers whose main checkpoints in a tight loop and stamps "
        "`time.monotonic()` into shared memory; suspend latency = last stamp after the request − the "
        f"request; terminate = `stop(grace={GRACE:g})` until main's end is known to the orchestrator."
    )
    table.note(f"Checkpoint: best of 5 `timeit` runs of {opts.number:,} calls, in this process.")
    return table


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = arguments(__doc__, "few, short sleepers (smoke test)")
    parser.add_argument("--n", type=int, help="process systems to run at once (100)")
    parser.add_argument("--seconds", type=float, help="how long each main sleeps (1.0)")
    parser.add_argument("--rounds", type=int, help="workers measured for control latency (10)")
    parser.add_argument("--number", type=int, help="checkpoint calls per timed run (1,000,000)")
    defaults = {"n": (4, 100), "seconds": (0.1, 1.0), "rounds": (2, 10), "number": (10_000, 1_000_000)}
    return options(parser, argv, defaults)


def main(argv: Sequence[str] | None = None) -> int:
    print(report(parse(argv)).render())
    return 0


if __name__ == "__main__":
    # A worker imports its system's class by module name, and ``__main__`` is
    # not one: run this file as the module ``bench_process`` instead.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_process

    raise SystemExit(bench_process.main())
