"""Event records, the source log format, the journal and its replay."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from datetime import datetime
from pathlib import Path

import attrs
import pytest

import statesys
from statesys import Event, Journal, LogFormatter, System, format_line, read_journal, replay
from statesys._cli import main as cli

from .strategies import ARTICLE_ORDER
from .test_system import Sleeper

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\t\[[^\]]+\]\tpid:\d{5,}\t[a-z]+$")


def test_source_log_format_exactly() -> None:
    stamp = datetime(2019, 12, 14, 16, 43, 29, 196505).timestamp()
    event = Event(stamp, "appSystem", 21020, "activate", "initial", "ready")
    assert format_line(event) == "2019-12-14 16:43:29.196505\t[appSystem]\tpid:21020\tready"
    small = attrs.evolve(event, path="app/sleepSystem1", pid=42)
    assert format_line(small) == "2019-12-14 16:43:29.196505\t[sleepSystem1]\tpid:00042\tready"
    assert format_line(small, full_path=True).split("\t")[1] == "[app/sleepSystem1]"


def test_events_are_frozen() -> None:
    event = Event(0.0, "a", 1, "start", "ready", "running")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.dest = "x"  # type: ignore[misc]


def test_library_logs_through_statesys_logger_without_configuring_it() -> None:
    assert logging.getLogger("statesys").handlers == []
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter())
    logger = logging.getLogger("statesys")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        app = System(
            "appSystem",
            subsystems=[Sleeper("sleepSystem1", seconds=0.02), Sleeper("sleepSystem2", seconds=0.01)],
        )
        assert statesys.run(app) == "completed"
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    order = [(line.split("\t")[1], line.split("\t")[3]) for line in lines]
    assert order == [(f"[{name}]", state) for name, state in ARTICLE_ORDER]


def run_with_journal(path: Path) -> System:
    app = System("app", subsystems=[Sleeper("a", seconds=5), Sleeper("b", fail="bad")])
    with Journal(path) as journal:
        app.subscribe(journal)
        assert statesys.run(app) == "terminated"
    return app


def test_journal_round_trip_and_replay(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    app = run_with_journal(path)
    events = [e for _, e in read_journal(path)]
    assert {e.path for e in events} == {"app", "app/a", "app/b"}
    assert events[-1].dest == "terminated"
    b_end = next(e for e in events if e.path == "app/b" and e.dest == "terminated")
    assert "ValueError: bad" in (b_end.cause or "")
    report = replay(path)
    assert report.ok, str(report)
    assert report.states == {"app": "terminated", "app/a": "terminated", "app/b": "terminated"}
    assert app.state == "terminated"


def tamper(path: Path, edit: str) -> Path:
    lines = path.read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    if edit == "drop":
        del rows[3]
    elif edit == "illegal":
        rows[-1]["trigger"] = "complete"
    elif edit == "swap":
        rows[3], rows[4] = rows[4], rows[3]
    out = path.with_name(f"{edit}.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.mark.parametrize("edit", ["drop", "illegal", "swap"])
def test_replay_reports_the_first_tampered_step(tmp_path: Path, edit: str) -> None:
    path = tmp_path / "run.jsonl"
    run_with_journal(path)
    report = replay(tamper(path, edit))
    assert not report.ok
    assert report.line is not None and report.line >= 1
    expected = {"drop": "missing step", "illegal": "illegal step", "swap": "time goes backwards"}[edit]
    assert expected in (report.problem or ""), report


def test_replay_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.jsonl"
    run_with_journal(path)
    assert cli(["replay", str(path)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    assert cli(["replay", str(tamper(path, "drop"))]) == 1
    assert "missing step" in capsys.readouterr().out
    (tmp_path / "junk.jsonl").write_text("not json\n")
    assert cli(["replay", str(tmp_path / "junk.jsonl")]) == 2
    assert "journal line 1" in capsys.readouterr().err
    assert cli(["replay", str(path), "--lifecycle", "nope.module:X"]) == 2


def test_a_failing_listener_does_not_lose_state(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    s = System("s")
    s.subscribe(broken)
    seen: list[Event] = []
    s.subscribe(seen.append)

    async def go() -> None:
        await s.activate()
        await s.start()
        await s.complete()

    with caplog.at_level(logging.ERROR, logger="statesys"):
        asyncio.run(go())
    assert s.state == "completed"
    assert [e.dest for e in seen] == ["ready", "running", "completed"]
    assert "listener bug" in caplog.text
