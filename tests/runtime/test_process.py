"""ProcessRunner: hooks and main in a dedicated worker process, control, failures, no orphans.

The systems here are small stand-ins with exactly what the runner uses of a
System (``path``, ``name``, ``suspend_mode``, ``_remote_spec``) plus hooks; they
live at module level so that a worker can import them by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import mmap
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from statesys._context import Terminating
from statesys.exceptions import ConfigError, RemoteError, WorkerDied
from statesys.runtime import _forkserver, _process
from statesys.runtime._process import ProcessContext, ProcessRunner

from .conftest import descendants

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
PR_SET_CHILD_SUBREAPER = 36


# -- system stand-ins --------------------------------------------------------------------


class Base:
    """What ProcessRunner needs of a system; config values become attributes."""

    def __init__(self, name: str, **config: Any) -> None:
        self.name = name
        self.path = f"test/{name}"
        self.suspend_mode = config.get("suspend_mode", "cooperative")
        self._config = config
        for key, value in config.items():
            setattr(self, key, value)

    def _remote_spec(self) -> tuple[type, str, dict[str, Any]]:
        return type(self), self.name, dict(self._config)


def _note(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


class Hooks(Base):
    """Every hook notes its name and pid in ``self.out``."""

    out: str

    def prepare(self, **kwargs: Any) -> None:
        _note(self.out, f"prepare {os.getpid()} {sorted(kwargs.items())}")

    def main(self) -> None:
        _note(self.out, f"main {os.getpid()}")

    def shutdown(self) -> None:
        _note(self.out, f"shutdown {os.getpid()}")

    def teardown(self) -> None:
        _note(self.out, f"teardown {os.getpid()}")


class AsyncHooks(Base):
    out: str

    async def prepare(self, **kwargs: Any) -> None:
        await asyncio.sleep(0.01)
        _note(self.out, f"prepare {os.getpid()} {sorted(kwargs.items())}")

    async def main(self, ctx: ProcessContext) -> None:
        await ctx.asleep(0.01)
        _note(self.out, f"main {os.getpid()}")

    async def teardown(self) -> None:
        _note(self.out, f"teardown {os.getpid()}")


class Environment(Base):
    out: str

    def prepare(self) -> None:
        _note(self.out, f"{os.getcwd()} {os.environ.get('STATESYS_TEST_VAR')}")


class Failing(Base):
    def prepare(self) -> None:
        raise ValueError("no data at /nowhere")

    def main(self) -> None:
        raise KeyError("missing")


class Exits(Base):
    def main(self) -> None:
        os._exit(3)


class Segfaults(Base):
    def main(self) -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
        ctypes.string_at(0)


class Sleeps(Base):
    """Sleeps without checkpoints until killed."""

    def main(self) -> None:
        while True:
            time.sleep(0.05)


class Counting(Base):
    """Bumps a counter in a shared file; checkpoints each round if ``self.checkpoints``."""

    counter: str
    checkpoints: bool = True
    ignore_sigterm: bool = False

    def main(self, ctx: ProcessContext) -> None:
        if self.ignore_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(self.counter, "r+b") as f, mmap.mmap(f.fileno(), 8) as shared:
            n = 0
            while True:
                if self.checkpoints:
                    ctx.checkpoint()
                n += 1
                shared[:8] = n.to_bytes(8, "little")
                time.sleep(0.001)

    def teardown(self) -> None:
        _note(self.counter + ".teardown", str(os.getpid()))


class AsyncCounting(Base):
    counter: str

    async def main(self, ctx: ProcessContext) -> None:
        with open(self.counter, "r+b") as f, mmap.mmap(f.fileno(), 8) as shared:
            n = 0
            while True:
                await ctx.acheckpoint()
                n += 1
                shared[:8] = n.to_bytes(8, "little")
                await asyncio.sleep(0.001)


class UntilStopped(Base):
    def main(self, ctx: ProcessContext) -> None:
        while not ctx.stopping:
            ctx.sleep(30)


class AsyncUntilStopped(Base):
    async def main(self, ctx: ProcessContext) -> None:
        while not ctx.stopping:
            await ctx.asleep(30)


class Logs(Base):
    def main(self) -> None:
        log = logging.getLogger("tests.runtime.child")
        log.warning("hello %s from %d", "parent", os.getpid())
        log.debug("dropped: below the level the parent has")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("it failed")


class Spawner(Base):
    """Starts a grandchild (``sleep``), writes its pid to ``self.pidfile``, then runs or returns."""

    pidfile: str
    returns: bool = False
    ignore_sigterm: bool = False

    def main(self, ctx: ProcessContext) -> None:
        child = subprocess.Popen(["sleep", "60"])
        if self.ignore_sigterm:  # after the Popen: an ignored signal stays ignored across exec
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        tmp = self.pidfile + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(child.pid))
        os.replace(tmp, self.pidfile)
        if self.returns:
            return
        while True:
            if self.ignore_sigterm:
                time.sleep(0.05)  # deaf to requests too: only SIGKILL ends it
            else:
                ctx.sleep(30)


class Sized(Base):
    """Takes a big argument and logs a big record: messages larger than a socket buffer."""

    out: str

    def prepare(self, blob: bytes) -> None:
        _note(self.out, str(len(blob)))

    def main(self) -> None:
        logging.getLogger("tests.runtime.child").warning("%s", "y" * 3_000_000)


class Restartable(Base):
    """Its first main dies; a later main reports what the (replayed) prepare stored."""

    out: str
    value: int = 0

    def prepare(self, value: int) -> None:
        self.value = value

    def main(self) -> None:
        marker = self.out + ".died"
        if not os.path.exists(marker):
            _note(marker, "")
            os._exit(3)
        _note(self.out, f"{os.getpid()} {self.value}")


# -- helpers -------------------------------------------------------------------------


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


@contextlib.asynccontextmanager
async def opened(system: Base) -> AsyncIterator[ProcessRunner]:
    runner = ProcessRunner(system)
    try:
        yield runner
    finally:
        await runner.close()


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def new_counter(tmp_path: Path) -> Path:
    path = tmp_path / "counter"
    path.write_bytes(bytes(8))
    return path


def count(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


async def paused(path: Path) -> bool:
    """True once the counter holds still for a while (a running main bumps it every ms)."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        before = count(path)
        await asyncio.sleep(0.3)
        if count(path) == before:
            return True
    return False


async def advancing(path: Path) -> None:
    start = count(path)
    await until(lambda: count(path) > start + 10, "the counter to advance")


async def pid_from(path: Path) -> int:
    await until(path.exists, f"{path.name} to be written")
    return int(path.read_text())


def all_gone(pids: list[int], timeout: float = 10.0) -> bool:
    """Wait until none of `pids` exists, reaping those that were reparented to this process."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if not any(psutil.pid_exists(pid) for pid in pids):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


# -- hooks ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Hooks, AsyncHooks])
def test_each_hook_runs_in_the_worker(tmp_path: Path, cls: type[Base]) -> None:
    out = tmp_path / "out"

    async def scenario() -> int:
        async with opened(cls("hooks", out=str(out))) as runner:
            await runner.call("prepare", {"epochs": 3})
            pid = runner.pid
            await runner.launch()
            if cls is Hooks:
                await runner.call("shutdown", {})
            await runner.call("teardown", {})
            assert runner.pid == pid
        assert runner.pid == pid  # still known after close
        return pid

    pid = run(scenario)
    assert pid != os.getpid()
    lines = out.read_text().splitlines()
    names = ["prepare", "main", "shutdown", "teardown"] if cls is Hooks else ["prepare", "main", "teardown"]
    assert [line.split()[0] for line in lines] == names
    assert {line.split()[1] for line in lines} == {str(pid)}
    assert lines[0].endswith("[('epochs', 3)]")


def test_a_worker_sees_the_orchestrators_directory_and_environment_of_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def started() -> None:  # the fork server may well be older than this test
        async with opened(Hooks("first", out=os.devnull)) as runner:
            await runner.launch()

    run(started)
    monkeypatch.setenv("STATESYS_TEST_VAR", "now")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"

    async def scenario() -> None:
        async with opened(Environment("env", out=str(out))) as runner:
            await runner.call("prepare", {})

    run(scenario)
    assert out.read_text().split() == [str(tmp_path), "now"]


def test_hook_raising_is_a_remote_error_with_traceback() -> None:
    async def scenario() -> None:
        async with opened(Failing("failing")) as runner:
            with pytest.raises(RemoteError) as info:
                await runner.call("prepare", {})
            err = info.value
            assert err.system == "test/failing"
            assert err.type_name == "ValueError"
            assert str(err) == "test/failing: ValueError: no data at /nowhere"
            assert "in prepare" in err.remote_traceback
            assert 'raise ValueError("no data at /nowhere")' in err.remote_traceback
            assert "statesys/runtime" not in err.remote_traceback
            # the worker survives a failed hook
            with pytest.raises(RemoteError, match="KeyError"):
                await runner.launch()

    run(scenario)


def test_pid_is_the_orchestrators_until_a_worker_runs() -> None:
    async def scenario() -> None:
        runner = ProcessRunner(Hooks("lazy", out=os.devnull))
        assert runner.pid == os.getpid()
        assert not descendants()
        await runner.close()
        await runner.close()
        assert runner.pid == os.getpid()

    run(scenario)


def test_close_is_idempotent_and_a_closed_runner_refuses_work(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = ProcessRunner(Hooks("closing", out=str(tmp_path / "out")))
        await runner.call("prepare", {})
        pid = runner.pid
        await runner.close()
        assert not psutil.pid_exists(pid)
        await runner.close()
        assert runner.pid == pid
        with pytest.raises(RuntimeError, match="closed"):
            await runner.call("teardown", {})
        with pytest.raises(RuntimeError, match="closed"):
            runner.launch()

    run(scenario)


def test_a_runner_survives_a_change_of_event_loop(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner = ProcessRunner(Hooks("loops", out=str(out)))

    async def first() -> None:
        await runner.call("prepare", {})

    async def second() -> None:
        await runner.launch()
        await runner.close()

    asyncio.run(first())
    asyncio.run(second())
    assert [line.split()[0] for line in out.read_text().splitlines()] == ["prepare", "main"]


# -- main ------------------------------------------------------------------------------


def test_main_returning_ends_the_future_with_none(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(Hooks("returns", out=str(tmp_path / "out"))) as runner:
            first = runner.launch()
            await first
            assert first.result() is None
            again = runner.launch()  # again, in the same process
            await again
            assert again.result() is None

    run(scenario)


def test_main_raising_is_a_remote_error() -> None:
    async def scenario() -> None:
        async with opened(Failing("raises")) as runner:
            with pytest.raises(RemoteError) as info:
                await runner.launch()
            assert info.value.type_name == "KeyError"
            assert "in main" in info.value.remote_traceback

    run(scenario)


def test_main_calling_os_exit_is_a_dead_worker() -> None:
    async def scenario() -> None:
        async with opened(Exits("exits")) as runner:
            with pytest.raises(WorkerDied) as info:
                await runner.launch()
            assert info.value.exitcode == 3
            assert info.value.pid == runner.pid
            assert str(info.value) == f"test/exits: process {runner.pid} exited with code 3"
            with pytest.raises(WorkerDied, match="exited with code 3"):
                await runner.call("teardown", {})

    run(scenario)


def test_worker_killed_by_sigkill_is_a_dead_worker() -> None:
    async def scenario() -> None:
        async with opened(Sleeps("killed")) as runner:
            main = runner.launch()
            os.kill(runner.pid, signal.SIGKILL)
            with pytest.raises(WorkerDied) as info:
                await main
            assert info.value.exitcode == -signal.SIGKILL
            assert str(info.value).endswith("was killed by SIGKILL")

    run(scenario)


def test_segfault_is_a_dead_worker() -> None:
    async def scenario() -> None:
        async with opened(Segfaults("segv")) as runner:
            with pytest.raises(WorkerDied, match="was killed by SIGSEGV"):
                await runner.launch()

    run(scenario)


def test_launch_after_a_death_starts_a_new_prepared_worker(tmp_path: Path) -> None:
    out = tmp_path / "out"

    async def scenario() -> None:
        async with opened(Restartable("restart", out=str(out))) as runner:
            await runner.call("prepare", {"value": 42})
            first = runner.pid
            with pytest.raises(WorkerDied):
                await runner.launch()
            assert runner.pid == first
            await runner.launch()
            assert runner.pid != first
            assert out.read_text().split() == [str(runner.pid), "42"]

    run(scenario)


# -- suspend / resume --------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Counting, AsyncCounting])
def test_cooperative_suspend_pauses_main_at_a_checkpoint(tmp_path: Path, cls: type[Base]) -> None:
    counter = new_counter(tmp_path)

    async def scenario() -> None:
        async with opened(cls("coop", counter=str(counter))) as runner:
            main = runner.launch()
            await advancing(counter)
            runner.suspend()
            assert await paused(counter)
            assert psutil.Process(runner.pid).status() != psutil.STATUS_STOPPED
            runner.resume()
            await advancing(counter)
            assert await runner.stop(5.0) is None
            with pytest.raises(Terminating):
                await main

    run(scenario)


def test_signal_suspend_stops_a_main_that_never_checks(tmp_path: Path) -> None:
    counter = new_counter(tmp_path)

    async def scenario() -> None:
        system = Counting("sig", counter=str(counter), checkpoints=False, suspend_mode="signal")
        async with opened(system) as runner:
            main = runner.launch()
            await advancing(counter)
            runner.suspend()
            assert await paused(counter)
            assert psutil.Process(runner.pid).status() == psutil.STATUS_STOPPED
            runner.resume()
            await advancing(counter)
            assert await runner.stop(0.2) == "did not stop within 0.2s: SIGTERM"
            with pytest.raises(Terminating):
                await main

    run(scenario)


@pytest.mark.parametrize("then", ["stop", "call"])
def test_a_worker_suspended_by_signal_after_main_ended_still_runs_hooks(tmp_path: Path, then: str) -> None:
    out = tmp_path / "out"

    async def scenario() -> None:
        async with opened(Hooks("late", out=str(out), suspend_mode="signal")) as runner:
            await runner.launch()
            runner.suspend()  # main had just returned: the idle worker is stopped
            await until(lambda: psutil.Process(runner.pid).status() == psutil.STATUS_STOPPED, "SIGSTOP")
            if then == "stop":
                assert await runner.stop(0.2) is None
            await runner.call("teardown", {})

    run(scenario)
    assert [line.split()[0] for line in out.read_text().splitlines()] == ["main", "teardown"]


@pytest.mark.parametrize("cls", [UntilStopped, AsyncUntilStopped])
def test_request_stop_wakes_a_sleeping_main(cls: type[Base]) -> None:
    async def scenario() -> None:
        async with opened(cls("server")) as runner:
            main = runner.launch()
            await asyncio.sleep(0.1)
            assert not main.done()
            runner.request_stop()
            await main
            assert main.result() is None

    run(scenario)


def test_process_context_flags_in_process() -> None:
    page = mmap.mmap(-1, mmap.PAGESIZE)
    ctx = ProcessContext("app/x", page)
    ctx.checkpoint()
    assert not ctx.stopping
    page[0] = _process._STOPPING
    assert ctx.stopping
    ctx.sleep(30)  # returns at once: asked to finish
    page[0] = _process._SUSPENDED
    assert ctx.suspended
    released = threading.Event()

    def wait() -> None:
        ctx.checkpoint()
        released.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not released.wait(0.05)
    page[0] = 0
    ctx._changed()
    waiter.join(5)
    assert released.is_set()
    page[0] = _process._TERMINATING | _process._STOPPING | _process._SUSPENDED
    with pytest.raises(Terminating):
        ctx.checkpoint()
    with pytest.raises(Terminating):
        asyncio.run(ctx.acheckpoint())


# -- stop --------------------------------------------------------------------------------


def test_stop_of_a_cooperative_main_needs_no_force(tmp_path: Path) -> None:
    counter = new_counter(tmp_path)

    async def scenario() -> None:
        async with opened(Counting("coop", counter=str(counter))) as runner:
            main = runner.launch()
            await advancing(counter)
            assert await runner.stop(5.0) is None
            with pytest.raises(Terminating):
                await main
            await runner.call("teardown", {})  # the worker lives on for teardown
            assert await runner.stop(5.0) is None  # nothing left to stop

    run(scenario)
    assert (tmp_path / "counter.teardown").exists()


def test_stop_of_a_main_that_ignores_requests_takes_sigterm(tmp_path: Path) -> None:
    counter = new_counter(tmp_path)

    async def scenario() -> None:
        async with opened(Counting("deaf", counter=str(counter), checkpoints=False)) as runner:
            main = runner.launch()
            await advancing(counter)
            assert await runner.stop(0.2) == "did not stop within 0.2s: SIGTERM"
            with pytest.raises(Terminating):
                await main
            await runner.call("teardown", {})

    run(scenario)
    assert (tmp_path / "counter.teardown").exists()


def test_stop_of_a_main_that_ignores_sigterm_takes_sigkill(tmp_path: Path) -> None:
    counter = new_counter(tmp_path)

    async def scenario() -> None:
        system = Counting("stubborn", counter=str(counter), checkpoints=False, ignore_sigterm=True)
        async with opened(system) as runner:
            main = runner.launch()
            await advancing(counter)
            note = await runner.stop(0.2)
            assert note == "did not stop within 0.2s, nor 0.2s after SIGTERM: SIGKILL"
            with pytest.raises(Terminating):
                await main
            with pytest.raises(WorkerDied, match="was killed by SIGKILL"):
                await runner.call("teardown", {})

    run(scenario)


@pytest.mark.parametrize("how", ["signal-suspend", "external-sigstop"])
def test_stop_of_a_stopped_main_continues_it_after_sigterm(tmp_path: Path, how: str) -> None:
    counter = new_counter(tmp_path)

    async def scenario() -> None:
        mode = "signal" if how == "signal-suspend" else "cooperative"
        async with opened(Counting("frozen", counter=str(counter), suspend_mode=mode)) as runner:
            main = runner.launch()
            await advancing(counter)
            if how == "signal-suspend":
                runner.suspend()
            else:
                os.killpg(runner.pid, signal.SIGSTOP)
            await until(lambda: psutil.Process(runner.pid).status() == psutil.STATUS_STOPPED, "SIGSTOP")
            assert await runner.stop(0.2) == "did not stop within 0.2s: SIGTERM"
            with pytest.raises(Terminating):
                await main
            assert psutil.Process(runner.pid).status() != psutil.STATUS_STOPPED

    run(scenario)


# -- logs ------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_logs_reach_the_parents_handlers_with_the_childs_pid() -> None:
    collect = _Collect()
    logger = logging.getLogger("tests.runtime.child")
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:

        async def scenario() -> int:
            async with opened(Logs("logs")) as runner:
                await runner.launch()
                return runner.pid

        pid = run(scenario)
    finally:
        logger.removeHandler(collect)
        logger.setLevel(logging.NOTSET)
    assert [r.getMessage() for r in collect.records] == [f"hello parent from {pid}", "it failed"]
    assert {r.process for r in collect.records} == {pid}
    assert {r.processName for r in collect.records} == {"test/logs"}
    assert pid != os.getpid()
    failed = collect.records[1]
    assert failed.levelno == logging.ERROR
    assert failed.exc_text is not None
    assert "RuntimeError: boom" in failed.exc_text


def test_messages_larger_than_a_socket_buffer_go_both_ways(tmp_path: Path) -> None:
    out = tmp_path / "out"
    collect = _Collect()
    logger = logging.getLogger("tests.runtime.child")
    logger.addHandler(collect)
    try:

        async def scenario() -> None:
            async with opened(Sized("big", out=str(out))) as runner:
                await runner.call("prepare", {"blob": b"x" * 5_000_000})
                await runner.launch()

        run(scenario)
    finally:
        logger.removeHandler(collect)
    assert out.read_text().split() == ["5000000"]
    assert [len(r.getMessage()) for r in collect.records] == [3_000_000]


# -- configuration -----------------------------------------------------------------------


def test_unpicklable_config_is_a_config_error_naming_the_field() -> None:
    async def scenario() -> None:
        runner = ProcessRunner(Hooks("locked", out=os.devnull, lock=threading.Lock()))
        with pytest.raises(ConfigError) as info:
            await runner.call("prepare", {})
        assert info.value.system == "test/locked"
        assert info.value.field == "lock"
        assert "cannot be sent to a process: cannot pickle '_thread.lock' object" in str(info.value)
        assert "executor='thread'" in str(info.value)
        with pytest.raises(ConfigError, match="lock"):
            runner.launch()
        await runner.close()

    run(scenario)


def test_unpicklable_hook_argument_is_a_config_error_naming_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(Hooks("args", out=str(tmp_path / "out"))) as runner:
            with pytest.raises(ConfigError) as info:
                await runner.call("prepare", {"ok": 1, "callback": lambda: None})
            assert info.value.field == "callback"

    run(scenario)


def test_a_class_a_worker_cannot_import_is_a_config_error() -> None:
    class Local(Base):
        def main(self) -> None:
            pass

    async def scenario() -> None:
        for cls, where in [(Local, "inside a function")]:
            runner = ProcessRunner(cls("nowhere"))
            with pytest.raises(ConfigError, match=where) as info:
                runner.launch()
            assert info.value.field == "executor"
            await runner.close()

    run(scenario)


def test_a_module_the_fork_server_cannot_import_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = types.ModuleType("statesys_ghost_module")  # importable here, nowhere else
    Ghost = type("Ghost", (Hooks,), {"__module__": ghost.__name__})
    ghost.Ghost = Ghost  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, ghost.__name__, ghost)

    async def scenario() -> None:
        async with opened(Ghost("ghost", out=os.devnull)) as runner:
            with pytest.raises(ConfigError) as info:
                await runner.call("prepare", {})
            assert info.value.field == "executor"
            assert "importing 'statesys_ghost_module' failed" in str(info.value)
            assert runner.pid == os.getpid()

    run(scenario)


# -- no orphans ------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["close-while-running", "main-returned", "sigkill-stop"])
def test_grandchildren_die_with_the_worker(tmp_path: Path, ending: str) -> None:
    pidfile = tmp_path / "grandchild"

    async def scenario() -> tuple[int, int]:
        system = Spawner(
            "spawner",
            pidfile=str(pidfile),
            returns=ending == "main-returned",
            ignore_sigterm=ending == "sigkill-stop",
        )
        async with opened(system) as runner:
            main = runner.launch()
            grandchild = await pid_from(pidfile)
            assert psutil.Process(grandchild).ppid() == runner.pid
            if ending == "main-returned":
                await main
                assert psutil.pid_exists(grandchild)  # alive until the runner closes
            elif ending == "sigkill-stop":
                note = await runner.stop(0.1)
                assert note is not None
                assert note.endswith("SIGKILL")
                assert not psutil.pid_exists(grandchild)
        return runner.pid, grandchild

    worker, grandchild = run(scenario)
    assert not psutil.pid_exists(worker)
    assert not psutil.pid_exists(grandchild)


ORCHESTRATOR = """
import asyncio, importlib, sys
mod = importlib.import_module(sys.argv[1])
from statesys.runtime._process import ProcessRunner

async def main():
    runners = [ProcessRunner(mod.Spawner(f"s{i}", pidfile=f"{sys.argv[2]}.{i}")) for i in range(2)]
    for runner in runners:
        runner.launch()
    print(" ".join(str(runner.pid) for runner in runners), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_an_orchestrator_killed_by_sigkill_leaves_no_process(tmp_path: Path) -> None:
    from statesys.runtime._forkserver import prctl

    # Orphans of the killed tree come to this process, so that the test sees
    # (and reaps) whatever would otherwise hide under init.
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    orchestrator = subprocess.Popen(
        [sys.executable, "-c", ORCHESTRATOR, __name__, str(tmp_path / "grandchild")],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)},
    )
    try:
        assert orchestrator.stdout is not None
        ready, _, _ = select.select([orchestrator.stdout], [], [], 30)
        assert ready, "the orchestrator did not start its workers"
        workers = [int(pid) for pid in orchestrator.stdout.readline().split()]
        assert len(workers) == 2

        async def grandchildren() -> list[int]:
            return [await pid_from(tmp_path / f"grandchild.{i}") for i in range(2)]

        spawned = asyncio.run(grandchildren())
        tree = psutil.Process(orchestrator.pid).children(recursive=True)
        assert set(workers) | set(spawned) < {p.pid for p in tree}  # and the fork server

        orchestrator.kill()
        orchestrator.wait()
        assert all_gone([p.pid for p in tree])
    finally:
        prctl(PR_SET_CHILD_SUBREAPER, 0)
        if orchestrator.poll() is None:
            orchestrator.kill()
            orchestrator.wait()
        if orchestrator.stdout is not None:
            orchestrator.stdout.close()


def test_a_killed_fork_server_takes_its_workers_and_their_children_along(tmp_path: Path) -> None:
    from statesys.runtime._forkserver import prctl

    pidfile = tmp_path / "grandchild"
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # the orphans come here, to be seen and reaped
    try:

        async def scenario() -> tuple[int, int]:
            async with opened(Spawner("lost", pidfile=str(pidfile))) as runner:
                main = runner.launch()
                grandchild = await pid_from(pidfile)
                server = _forkserver.server_pid()
                assert server is not None
                os.kill(server, signal.SIGKILL)
                with pytest.raises(WorkerDied, match="the fork server ended"):
                    await main
                return runner.pid, grandchild

        worker, grandchild = run(scenario)
        assert all_gone([worker, grandchild])
    finally:
        prctl(PR_SET_CHILD_SUBREAPER, 0)

    async def afterwards() -> None:  # the next worker comes from a new server
        async with opened(Hooks("after", out=str(tmp_path / "out"))) as runner:
            await runner.launch()

    run(afterwards)


def test_shutting_the_fork_server_down_kills_its_workers() -> None:
    async def scenario() -> None:
        async with opened(Sleeps("orphan")) as runner:
            main = runner.launch()
            pid = runner.pid
            _forkserver.shutdown()
            with pytest.raises(WorkerDied, match="was killed by SIGKILL"):
                await main
            assert not psutil.pid_exists(pid)

    run(scenario)
