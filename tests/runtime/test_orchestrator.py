"""The orchestrator: calls from other threads, signals terminating the tree."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from statesys import System
from statesys.runtime import Orchestrator, supervise


def test_calls_from_other_threads_are_marshalled_onto_the_loop() -> None:
    app = System("app", subsystems=[System("a"), System("b")])
    seen_threads: set[str] = set()
    app.subscribe(lambda _e: seen_threads.add(threading.current_thread().name))
    with Orchestrator() as orch:
        assert orch.trigger(app, "activate") == "ready"
        results: list[str] = []
        workers = [
            threading.Thread(target=lambda c=c: results.append(orch.trigger(app[c], "start")))
            for c in ("a", "b")
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert sorted(results) == ["running", "running"]
        assert app.state == "ready"  # its own part has not started
        assert orch.trigger(app, "start") == "running"
        orch.close(app)
    assert app.state == "terminated"
    assert seen_threads == {"statesys-orchestrator"}


def test_orchestrator_refuses_a_call_from_its_own_loop() -> None:
    with Orchestrator() as orch:
        app = System("x")

        async def inner() -> str:
            coro = app.activate()
            try:
                orch.call(coro)
            except RuntimeError as exc:
                return str(exc)
            return "no error"

        assert "would deadlock" in orch.call(inner())


def test_supervise_returns_the_final_state() -> None:
    class Quick(System):
        async def main(self) -> None:
            await asyncio.sleep(0.01)

    assert asyncio.run(supervise(Quick("q"))) == "completed"


SCRIPT = textwrap.dedent(
    """
    import sys, statesys
    from statesys._demo import Sleep
    app = statesys.System("app", subsystems=[Sleep("a", seconds=60, executor="thread"),
                                             Sleep("b", seconds=60, executor="async")])
    app.subscribe(lambda e: print(e.path, e.dest, flush=True))
    try:
        statesys.run(app)
    finally:
        print("final", app.state, [s.state for s in app.subsystems], flush=True)
    """
)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, -signal.SIGINT), (signal.SIGTERM, 143)])
def test_signal_terminates_the_tree_in_reverse_order_and_exits_non_zero(
    tmp_path: Path, signum: int, code: int
) -> None:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.startswith("app running"):
            break
    time.sleep(0.05)
    os.kill(proc.pid, signum)
    out, _ = proc.communicate(timeout=30)
    lines += out.splitlines()
    # SIGINT: KeyboardInterrupt escapes, and Python ends by SIGINT as shells expect; SIGTERM: exit 143
    assert proc.returncode == code, lines
    assert "final terminated ['terminated', 'terminated']" in lines
    ends = [
        line.split()[0] for line in lines if line.endswith(" terminated") and not line.startswith("final")
    ]
    assert ends[:2] == ["app/b", "app"], ends  # reverse start order: b first; the parent follows it


PROCESS_SCRIPT = textwrap.dedent(
    """
    import os, subprocess, statesys
    from statesys import System

    class Spawner(System):
        seconds: float = 60.0
        def main(self, ctx):
            child = subprocess.Popen(["sleep", "120"])  # a grandchild in the worker's group
            with open(f"pids-{self.name}.tmp", "w") as f:
                f.write(f"{os.getpid()} {child.pid}")
            os.rename(f"pids-{self.name}.tmp", f"pids-{self.name}")
            ctx.sleep(self.seconds)

    if __name__ == "__main__":
        app = System("app", subsystems=[Spawner("a", executor="process", grace=0.5),
                                        Spawner("b", executor="process", grace=0.5)])
        statesys.run(app)
    """
)


@pytest.mark.parametrize(
    ("signum", "how"),
    [(signal.SIGINT, "-m"), (signal.SIGTERM, "script"), (signal.SIGKILL, "-m"), (signal.SIGKILL, "script")],
)
def test_no_process_of_the_tree_survives_the_orchestrator(tmp_path: Path, signum: int, how: str) -> None:
    """Classes of the main module work in workers, run as `python -m mod` or as a script."""
    import psutil

    (tmp_path / "spawner_app.py").write_text(PROCESS_SCRIPT)
    command = ["-m", "spawner_app"] if how == "-m" else [str(tmp_path / "spawner_app.py")]
    proc = subprocess.Popen(
        [sys.executable, *command],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    files = [tmp_path / "pids-a", tmp_path / "pids-b"]
    deadline = time.monotonic() + 30
    while not all(f.exists() for f in files):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.02)
    pids = {int(p) for f in files for p in f.read_text().split()}
    tree = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    assert pids <= tree and len(pids) == 4  # two workers, two grandchildren
    os.kill(proc.pid, signum)
    proc.communicate(timeout=30)

    def alive() -> list[int]:
        left = []
        for pid in pids | tree:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    left.append(pid)
            except psutil.NoSuchProcess:
                pass
        return left

    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive()
