"""The statesys command: demo, run, errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from statesys._cli import main as cli

from .strategies import ARTICLE_ORDER

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\t\[(\w+)\]\tpid:(\d{5,})\t([a-z]+)$")


def test_demo_prints_the_source_log_lines_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["demo", "--executor", "thread", "--seconds", "0.2", "0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m.group(1), m.group(3)) for m in parsed if m] == ARTICLE_ORDER


def test_demo_scales(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["demo", "--executor", "async", "--systems", "5", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert out.count("\tcompleted") == 6 and "[sleepSystem5]" in out


def test_run_with_a_live_diagram_file(tmp_path: Path) -> None:
    (tmp_path / "mytree.py").write_text(
        "import statesys\nfrom statesys._demo import Sleep\n"
        "def build():\n"
        "    return statesys.System('app', subsystems=[Sleep('a', seconds=0.05, executor='async')])\n"
    )
    out = tmp_path / "tree.gv"
    proc = subprocess.run(
        [sys.executable, "-m", "statesys", "run", "mytree:build", "--no-live", "--diagram", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "[app/a]" in proc.stdout
    assert "completed" in out.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no_such_module:build"], "cannot import 'no_such_module'"),
        (["run", "statesys:nothing_here"], "has no attribute 'nothing_here'"),
        (["run", "statesys:DEFAULT_LIFECYCLE"], "not a statesys.System"),
        (["run", "justamodule"], "expected module:attribute"),
    ],
)
def test_run_bad_targets_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
