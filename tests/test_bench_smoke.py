"""The benchmarks still run: each script's ``main(["--quick"])`` prints its full table.

Nothing here looks at a time or a size (DESIGN §10: benchmarks report ratios, tests
never assert wall-clock times); only that every expected row is printed.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def bench_module(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """Import a script from ``bench/`` as the command line would (its folder first on the path)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module(request.param)
    finally:
        sys.path.remove(str(BENCH))


def _table_rows(out: str) -> list[list[str]]:
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def _check_table(out: str, expected: list[str]) -> list[list[str]]:
    rows = _table_rows(out)
    assert rows, out
    assert rows[0] == ["what", "statesys", "baseline(s)", "ratio", "target", "met?"]
    body = rows[1:]
    assert all(len(r) == 6 for r in body), out
    assert all(r[5] in ("yes", "**no**", "n/a") for r in body), out
    for label in expected:
        assert sum(r[0].startswith(label) for r in body) == 1, f"no single row {label!r} in:\n{out}"
    assert len(body) == len(expected), out
    return body


@pytest.mark.parametrize("bench_module", ["bench_core", "bench_process", "bench_demo"], indirect=True)
def test_bench_quick(bench_module: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    _check_table(out, list(bench_module.ROWS))


@pytest.mark.parametrize("bench_module", ["bench_tree"], indirect=True)
def test_bench_tree_quick(bench_module: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    expected = [
        f"{bench_module.ROW_STEADY}: flat",
        f"{bench_module.ROW_CLIMB}: flat",
        f"{bench_module.ROW_STEADY}: fan-out",
        f"{bench_module.ROW_CLIMB}: fan-out",
        f"{bench_module.ROW_STEADY}: chain",
        f"{bench_module.ROW_CLIMB}: chain",
        bench_module.ROW_MEMORY,
        bench_module.ROW_BUILD,
        bench_module.ROW_BRINGUP,
    ]
    body = _check_table(out, expected)
    # every size of every tree got a number or a named failure
    for row in body[:6]:
        assert row[1].count(":") >= 3, row
