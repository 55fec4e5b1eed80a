"""`statesys demo` (appSystem, sleepSystem1 5 s and sleepSystem2 3 s, one process each) end to end.

Baseline in the same run: the source design's program (``source_design.py``: one
spawned ``multiprocessing.Process`` per system, states in a Manager dict).  Both
are timed as whole commands, interpreter start-up included.
"""

from __future__ import annotations

import argparse
import compileall
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _util import Table, ratio, secs

HERE = Path(__file__).resolve().parent
ROW_DEMO = "statesys demo, one process per system"
ROWS = (ROW_DEMO,)
TARGET_S = 5.2


def timed(command: list[str], repeat: int) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeat):
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE.parent)
        best = min(best, time.perf_counter() - began)
        out = done.stdout
    return best, out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="0.5 s and 0.3 s sleeps, one run")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    # bytecode compiled beforehand, as `pip install` does: an environment with
    # PYTHONDONTWRITEBYTECODE would otherwise recompile every module on each run
    import statesys

    compileall.compile_dir(str(Path(statesys.__file__).parent), quiet=1)
    seconds = ["0.5", "0.3"] if args.quick else ["5", "3"]
    repeat = 1 if args.quick else args.repeat
    ours, lines = timed([sys.executable, "-m", "statesys", "demo", "--seconds", *seconds], repeat)
    source, _ = timed([sys.executable, str(HERE / "source_design.py"), *seconds], repeat)
    assert lines.count("\tcompleted") == 3, lines
    target = TARGET_S if not args.quick else None
    table = Table("The demo application")
    table.add(
        f"{ROW_DEMO} ({' s + '.join(seconds)} s sleeps)",
        secs(ours),
        f"source design (spawn) {secs(source)}",
        ratio(ours, source),
        f"≤ {TARGET_S:g} s" if target else "n/a (quick)",
        ours <= target if target else None,
    )
    table.note(
        f"best of {repeat}; whole commands, Python start-up included; "
        "statesys byte-compiled first, as an installed package is"
    )
    print(table.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
