"""Every executor through one suite: the real System, run by async, thread and process runners.

Hooks write to a marker file, so that what happened inside a worker process is
visible here; sync and async variants of each system share one behaviour.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import statesys
from statesys import Context, Event, Restart, System

from .conftest import descendants

EXECUTORS = ["async", "thread", "process"]


def note(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


def notes(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


class Worker(System):
    """Behaviour chosen by `mode`; sync main for the thread and process executors."""

    marker: str = os.devnull
    mode: str = "sleep"
    seconds: float = 0.05

    def prepare(self, **kwargs: Any) -> None:
        note(self.marker, f"prepare:{os.getpid()}")
        if self.mode == "bad-prepare":
            raise RuntimeError("no dataset")

    def main(self, ctx: Context) -> None:
        note(self.marker, "main")
        if self.mode == "sleep":
            ctx.sleep(self.seconds)
        elif self.mode == "serve":
            while not ctx.stopping:
                ctx.sleep(1)
        elif self.mode == "count":
            while not ctx.stopping:
                ctx.checkpoint()
                note(self.marker, "tick")
                time.sleep(0.005)
        elif self.mode == "fail":
            raise ValueError("diverged")
        elif self.mode == "flaky" and notes(Path(self.marker)).count("main") < 3:
            raise ValueError("flaky")

    def shutdown(self) -> None:
        note(self.marker, "shutdown")

    def teardown(self) -> None:
        note(self.marker, "teardown")


class AsyncWorker(Worker):
    """The same behaviour with `async def main`, for the async executor."""

    async def main(self, ctx: Context) -> None:  # type: ignore[override]
        note(self.marker, "main")
        if self.mode == "sleep":
            await ctx.asleep(self.seconds)
        elif self.mode == "serve":
            while not ctx.stopping:
                await ctx.asleep(1)
        elif self.mode == "count":
            while not ctx.stopping:
                await ctx.acheckpoint()
                note(self.marker, "tick")
                await asyncio.sleep(0.005)
        elif self.mode == "fail":
            raise ValueError("diverged")
        elif self.mode == "flaky" and notes(Path(self.marker)).count("main") < 3:
            raise ValueError("flaky")


def make(executor: str, tmp_path: Path, **config: Any) -> Worker:
    cls = AsyncWorker if executor == "async" else Worker
    return cls("w", executor=executor, marker=str(tmp_path / "marker"), **config)


def journal(system: System) -> list[Event]:
    events: list[Event] = []
    system.subscribe(events.append)
    return events


@pytest.mark.parametrize("executor", EXECUTORS)
def test_completes_with_hooks_in_the_right_place(executor: str, tmp_path: Path) -> None:
    w = make(executor, tmp_path)
    events = journal(w)
    assert statesys.run(w) == "completed"
    assert [e.dest for e in events] == ["ready", "running", "completed"]
    lines = notes(tmp_path / "marker")
    assert [x.split(":")[0] for x in lines] == ["prepare", "main", "shutdown"]
    worker_pid = int(lines[0].split(":")[1])
    assert (worker_pid != os.getpid()) == (executor == "process")
    assert {e.pid for e in events} == {worker_pid}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_main_failure_terminates_with_the_traceback(executor: str, tmp_path: Path) -> None:
    w = make(executor, tmp_path, mode="fail")
    events = journal(w)
    assert statesys.run(w) == "terminated"
    assert "ValueError: diverged" in (w.cause or "") and "Traceback" in (w.cause or "")
    assert events[-1].cause == w.cause
    assert notes(tmp_path / "marker")[-1] == "teardown"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_restart_policy(executor: str, tmp_path: Path) -> None:
    w = make(executor, tmp_path, mode="flaky", restart=Restart(limit=3, within=30, backoff=0.001))
    events = journal(w)
    assert statesys.run(w) == "completed"
    assert [e.dest for e in events] == [
        "ready",
        "running",
        "intermitted",
        "running",
        "intermitted",
        "running",
        "completed",
    ]
    assert notes(tmp_path / "marker").count("main") == 3


@pytest.mark.parametrize("executor", EXECUTORS)
def test_prepare_failure_disables(executor: str, tmp_path: Path) -> None:
    w = make(executor, tmp_path, mode="bad-prepare")
    events = journal(w)
    # run() cannot start a disabled system: it terminates it, teardown runs, no worker is left
    assert statesys.run(w) == "terminated"
    assert [e.dest for e in events] == ["disabled", "terminated"]
    assert "RuntimeError: no dataset" in (events[0].cause or "")
    assert (w.cause or "").startswith("run: w is disabled: RuntimeError: no dataset")
    assert notes(tmp_path / "marker")[-1] == "teardown"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cooperative_suspend_pauses_and_complete_stops_a_server(executor: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"

    async def go() -> None:
        w = make(executor, tmp_path, mode="count")
        await w.activate()
        await w.start()
        while notes(marker).count("tick") < 3:
            await asyncio.sleep(0.01)
        await w.suspend()
        await asyncio.sleep(0.05)
        frozen = notes(marker).count("tick")
        await asyncio.sleep(0.1)
        assert notes(marker).count("tick") <= frozen + 1
        await w.resume()
        while notes(marker).count("tick") <= frozen + 2:
            await asyncio.sleep(0.01)
        assert await w.complete() == "completed"
        assert notes(marker)[-1] == "shutdown"

    asyncio.run(go())


@pytest.mark.parametrize("executor", EXECUTORS)
def test_terminate_a_running_and_a_suspended_main(executor: str, tmp_path: Path) -> None:
    async def go(suspend: bool) -> None:
        w = make(executor, tmp_path, mode="serve", grace=2.0)
        await w.activate()
        await w.start()
        await asyncio.sleep(0.05)
        if suspend:
            await w.suspend()
        assert await w.terminate("operator") == "terminated"
        assert w.cause == "operator"
        assert notes(tmp_path / "marker")[-1] == "teardown"

    asyncio.run(go(False))
    asyncio.run(go(True))


# -- process only: signals and faults -----------------------------------------------------------


class Stubborn(System):
    """A main that never checkpoints, and ignores SIGTERM when told to."""

    marker: str = os.devnull
    fault: str = "none"

    def main(self) -> None:
        note(self.marker, f"main:{os.getpid()}")
        if self.fault == "ignore-term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif self.fault == "exit":
            os._exit(3)
        elif self.fault == "segfault":
            ctypes.string_at(0)
        elif self.fault == "grandchild":
            import subprocess

            subprocess.Popen(["sleep", "60"])
        end = time.monotonic() + 60
        while time.monotonic() < end:
            note(self.marker, "tick")
            time.sleep(0.01)
            if self.fault == "kill-self":
                os.kill(os.getpid(), signal.SIGKILL)

    def teardown(self) -> None:
        note(self.marker, "teardown")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("exit", "exited with code 3"),
        ("kill-self", "was killed by SIGKILL"),
        ("segfault", "was killed by SIGSEGV"),
    ],
)
def test_process_faults_become_terminated_with_cause(fault: str, expected: str, tmp_path: Path) -> None:
    s = Stubborn("s", executor="process", fault=fault, marker=str(tmp_path / "m"))
    events = journal(s)
    assert statesys.run(s) == "terminated"
    assert expected in (s.cause or "")
    assert [e.dest for e in events] == ["ready", "running", "terminated"]
    assert statesys.replay(_as_journal(events)).ok
    assert not descendants()


def test_signal_suspend_of_a_main_that_never_checkpoints(tmp_path: Path) -> None:
    marker = tmp_path / "m"

    async def go() -> None:
        s = Stubborn("s", executor="process", suspend_mode="signal", marker=str(marker), grace=0.3)
        await s.activate()
        await s.start()
        while notes(marker).count("tick") < 3:
            await asyncio.sleep(0.01)
        await s.suspend()
        for _ in range(100):  # the stop signal is delivered asynchronously
            if psutil.Process(s.pid).status() == psutil.STATUS_STOPPED:
                break
            await asyncio.sleep(0.01)
        assert psutil.Process(s.pid).status() == psutil.STATUS_STOPPED
        frozen = notes(marker).count("tick")
        await asyncio.sleep(0.1)
        assert notes(marker).count("tick") == frozen
        await s.resume()
        while notes(marker).count("tick") <= frozen:
            await asyncio.sleep(0.01)
        await s.suspend()
        assert await s.terminate() == "terminated"  # a stopped process is continued, then killed
        assert "SIGTERM" in (s.cause or "") or s.cause is None

    asyncio.run(go())


def test_terminate_escalates_to_sigkill_and_kills_grandchildren(tmp_path: Path) -> None:
    marker = tmp_path / "m"

    async def go() -> None:
        s = Stubborn("s", executor="process", fault="ignore-term", marker=str(marker), grace=0.2)
        g = Stubborn("g", executor="process", fault="grandchild", marker=str(tmp_path / "g"), grace=0.2)
        app = System("app", subsystems=[s, g])
        await app.activate()
        await app.start()
        while notes(marker).count("tick") < 2 or notes(tmp_path / "g").count("tick") < 2:
            await asyncio.sleep(0.01)
        assert any(p.name() == "sleep" for p in descendants())
        assert await app.terminate() == "terminated"
        assert "SIGKILL" in (s.cause or "")

    asyncio.run(go())
    assert not descendants()


class Holder(System):
    handle: object = None


def test_unpicklable_config_is_a_clear_error_naming_the_field(tmp_path: Path) -> None:
    async def go() -> None:
        h = Holder("h", executor="process", handle=lambda: None)
        with pytest.raises(statesys.ConfigError) as info:
            await h.activate()
        assert info.value.field == "handle" and "cannot be sent to a process" in str(info.value)
        assert h.state == "initial" and h.cause is None

    asyncio.run(go())


def _as_journal(events: list[Event]) -> Any:
    import io
    import json

    return io.StringIO("".join(json.dumps(e.as_json()) + "\n" for e in events))
