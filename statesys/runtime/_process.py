"""The process executor: each process system's code runs in its own worker process.

Orchestrator side: `ProcessRunner`.  Worker side: `worker_main` (run by the fork
server in each child it forks, see `_forkserver`) and `ProcessContext`.

Each worker has its own process group (so signals reach the grandchildren it
starts) and three links to the orchestrator:

- a stream socket of length-prefixed pickles: boot, hook calls and main requests
  one way; results and log records the other;
- one shared memory page (a memfd) holding the control flags.  The orchestrator
  writes them and ``ctx.checkpoint()`` reads them: a checkpoint is one memory read
  and a cooperative suspend takes effect at the next checkpoint, with no round
  trip.  A one-byte "poke" message only wakes a main that sleeps or waits while
  suspended;
- a status pipe from the fork server: the worker's pid, then its exit status once
  it was reaped and its group is empty.  That pipe, not the socket (which a
  forked grandchild may hold open), is how a death is noticed.

In the worker, hooks and main run one at a time in the main thread, where the
SIGTERM handler can interrupt them; a reader thread and a writer thread move
messages, so the main thread never writes to the socket (an exception raised by
a signal handler half-way through a write would corrupt the stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import itertools
import logging
import mmap
import os
import pickle
import queue
import runpy
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any, NamedTuple, NoReturn, Protocol

from .._context import Terminating
from ..exceptions import ConfigError, RemoteError, WorkerDied
from . import _forkserver
from ._runner import _wants_ctx

__all__ = ["MainRef", "ProcessContext", "ProcessRunner", "RemoteSystem", "worker_main"]

# Control flags, byte 0 of the shared page; only the orchestrator writes them.
_SUSPENDED = 1
_STOPPING = 2
_TERMINATING = 4
_HOLD = _SUSPENDED | _TERMINATING

#: A wait in the worker is woken by a poke; this re-check is only a safety net.
_RECHECK = 0.5
#: How long `close` lets an idle worker exit on its own before killing its group.
_CLOSE_WAIT = 1.0
#: How long to wait for the fork server to report a worker killed with SIGKILL.
_KILL_WAIT = 5.0
#: How long a read of `pid` waits for the fork server to answer.
_PID_WAIT = 30.0

_LEN = struct.Struct("!I")
_PICKLE = pickle.HIGHEST_PROTOCOL


def _frame(obj: object) -> bytes:
    data = pickle.dumps(obj, _PICKLE)
    return _LEN.pack(len(data)) + data


def _unframe(buf: bytearray) -> list[Any]:
    """Take the complete messages off the front of `buf`."""
    out: list[Any] = []
    while len(buf) >= _LEN.size:
        (size,) = _LEN.unpack_from(buf)
        end = _LEN.size + size
        if len(buf) < end:
            break
        out.append(pickle.loads(memoryview(buf)[_LEN.size : end]))
        del buf[:end]
    return out


# ======================================================================================
# Worker side
# ======================================================================================


class ProcessContext:
    """The `Context` of a main that runs in a worker process.

    Reads the control flags from the page the orchestrator writes; waits (while
    suspended, in `sleep`) are woken by the worker's reader thread when a poke
    arrives.
    """

    __slots__ = ("_aevent", "_aloop", "_cond", "_mm", "path")

    def __init__(self, path: str, mm: mmap.mmap) -> None:
        self.path = path
        self._mm = mm
        self._cond = threading.Condition()
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._aevent: asyncio.Event | None = None

    @property
    def stopping(self) -> bool:
        return bool(self._mm[0] & (_STOPPING | _TERMINATING))

    @property
    def suspended(self) -> bool:
        return (self._mm[0] & _HOLD) == _SUSPENDED

    def checkpoint(self) -> None:
        if self._mm[0] & _HOLD:
            with self._cond:
                while (self._mm[0] & _HOLD) == _SUSPENDED:
                    self._cond.wait(_RECHECK)
            if self._mm[0] & _TERMINATING:
                raise Terminating(self.path)

    async def acheckpoint(self) -> None:
        if self._mm[0] & _HOLD:
            while (self._mm[0] & _HOLD) == _SUSPENDED:
                await self._achange(_RECHECK)
            if self._mm[0] & _TERMINATING:
                raise Terminating(self.path)

    def sleep(self, seconds: float) -> None:
        self.checkpoint()
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._mm[0] & (_STOPPING | _TERMINATING):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, _RECHECK))
        self.checkpoint()

    async def asleep(self, seconds: float) -> None:
        await self.acheckpoint()
        deadline = time.monotonic() + seconds
        while not self._mm[0] & (_STOPPING | _TERMINATING):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await self._achange(min(left, _RECHECK))
        await self.acheckpoint()

    async def _achange(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        if self._aloop is not loop or self._aevent is None:
            self._aloop = loop
            self._aevent = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._aevent.wait(), timeout)

    def _bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Tell the context which loop an async main runs on, so pokes reach it."""
        self._aloop = loop
        self._aevent = None

    def _changed(self) -> None:
        """Called by the reader thread after a poke: wake whatever waits on the flags."""
        with self._cond:
            self._cond.notify_all()
        loop = self._aloop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(self._wake_async)

    def _wake_async(self) -> None:
        event, self._aevent = self._aevent, None
        if event is not None:
            event.set()


#: A job's outcome as sent to the orchestrator: None (returned),
#: ("terminated",) or ("raised", type name, message, traceback text).
_Outcome = tuple[str, ...] | None


def _describe(exc: BaseException) -> tuple[str, str, str, str]:
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    # The worker's own frames come first and say nothing about the failure.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return ("raised", name, str(exc), "".join(traceback.format_exception(cls, exc, tb)))


class _RelayHandler(logging.Handler):
    """Sends every record to the orchestrator, which hands it to its logger of that name."""

    def __init__(self, send: Callable[[object], None], process_name: str) -> None:
        super().__init__()
        self._send = send
        #: The system's path: a worker has no better name, and records show it.
        self.process_name = process_name
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._send(("log", self._portable(record)))
        except Exception:
            self.handleError(record)

    def _portable(self, record: logging.LogRecord) -> dict[str, Any]:
        # As QueueHandler.prepare does: merge args into the message and turn the
        # exception into text, since neither may survive pickling.
        data = dict(record.__dict__)
        data["msg"] = record.getMessage()
        data["args"] = None
        data["processName"] = self.process_name
        if record.exc_info:
            if not record.exc_text:
                data["exc_text"] = self._formatter.formatException(record.exc_info)
            data["exc_info"] = None
        data.pop("message", None)
        try:
            pickle.dumps(data, _PICKLE)
        except Exception:
            data = {key: _picklable_or_repr(value) for key, value in data.items()}
        return data


def _picklable_or_repr(value: object) -> object:
    try:
        pickle.dumps(value, _PICKLE)
    except Exception:
        return repr(value)
    return value


class _Worker:
    """The worker process's own loop (see the module docstring)."""

    def __init__(self, chan_fd: int, mem_fd: int) -> None:
        for fd in (chan_fd, mem_fd):
            os.set_inheritable(fd, False)  # programs a hook execs must not keep them
        self._sock = socket.socket(fileno=chan_fd)
        self._sock.setblocking(True)
        self._mm = mmap.mmap(mem_fd, mmap.PAGESIZE)
        os.close(mem_fd)
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._ctx: ProcessContext | None = None
        self._obj: Any = None
        self._boot_error: tuple[str, str, str, str] | None = None
        self._busy = False
        self._path = "?"

    def send(self, message: object) -> None:
        self._out.put(_frame(message))

    def run(self) -> None:
        writer = threading.Thread(target=self._write_loop, name="statesys-writer", daemon=True)
        writer.start()
        threading.Thread(target=self._read_loop, name="statesys-reader", daemon=True).start()
        signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    break
                self._do(job)
        finally:
            self._out.put(None)
            writer.join(5.0)

    def _do(self, job: tuple[Any, ...]) -> None:
        kind = job[0]
        if kind == "boot":
            _, spec, levels, cwd, environ = job
            # The fork server was started long ago: take the orchestrator's
            # directory and environment as they are now (CUDA_VISIBLE_DEVICES...).
            with contextlib.suppress(OSError):
                os.chdir(cwd)
            if environ != os.environ:
                os.environ.clear()
                os.environ.update(environ)
            self._setup_logging(levels)
            try:
                cls, name, config = pickle.loads(spec)
                if isinstance(cls, MainRef):
                    cls = cls.resolve()
                self._obj = cls(name, **config)
            except Exception as exc:
                self._boot_error = _describe(exc)
            return
        if kind == "call":
            _, jid, hook, kwargs = job
            outcome = self._run(lambda: self._call(hook, kwargs))
        else:  # "main"
            _, jid, replay = job
            outcome = self._run(lambda: self._main(replay))
        self.send(("done", jid, outcome))

    def _run(self, target: Callable[[], None]) -> _Outcome:
        if self._boot_error is not None:
            return self._boot_error
        # `_busy` is set inside the inner try, so that a Terminating raised by
        # the SIGTERM handler can only surface where the outer try catches it.
        try:
            try:
                self._busy = True
                target()
            finally:
                self._busy = False
        except Terminating:
            return ("terminated",)
        except BaseException as exc:
            return _describe(exc)
        return None

    def _call(self, hook: str, kwargs: bytes) -> None:
        result = getattr(self._obj, hook)(**pickle.loads(kwargs))
        if inspect.iscoroutine(result):
            asyncio.run(result)

    def _main(self, replay: bytes | None) -> None:
        if replay is not None:  # a new process after a dead one: prepare it again
            self._call("prepare", replay)
        ctx = self._ctx
        assert ctx is not None
        if self._mm[0] & _TERMINATING:  # stopped before it began (SIGTERM found us idle)
            raise Terminating(self._path)
        main = self._obj.main
        result = main(ctx) if _wants_ctx(main) else main()
        if inspect.iscoroutine(result):
            asyncio.run(_drive(ctx, result))

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # SIGTERM is the second step of `stop`: interrupt whatever hook or main
        # runs, wherever it is in Python code.  An idle worker ignores it (a late
        # SIGTERM must not kill a worker that still has to run teardown).
        if self._busy:
            raise Terminating(self._path)

    def _read_loop(self) -> None:
        buf = bytearray()
        try:
            while True:
                try:
                    data = self._sock.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    return
                buf += data
                for msg in _unframe(buf):
                    if msg[0] == "poke":
                        if self._ctx is not None:
                            self._ctx._changed()
                    elif msg[0] == "boot":
                        _, self._path, *rest = msg
                        self._ctx = ProcessContext(self._path, self._mm)
                        self._jobs.put(("boot", *rest))
                    else:
                        self._jobs.put(msg)
        finally:
            self._jobs.put(None)  # the orchestrator closed the channel: exit

    def _write_loop(self) -> None:
        while True:
            item = self._out.get()
            if item is None:
                return
            try:
                self._sock.sendall(item)
            except OSError:
                return  # the orchestrator is gone; nobody is left to tell

    def _setup_logging(self, levels: tuple[dict[str, int], int]) -> None:
        by_name, disabled = levels
        root = logging.getLogger()
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        relay = _RelayHandler(self.send, self._path)
        root.addHandler(relay)
        # The orchestrator's levels, so that what it would drop is not even sent.
        for name, level in by_name.items():
            (logging.getLogger(name) if name else root).setLevel(level)
        logging.disable(disabled)

        def unrelay() -> None:
            # A process forked from the worker has no writer thread and must not
            # share the worker's stream: its records go to its stderr instead.
            root.removeHandler(relay)
            root.addHandler(logging.StreamHandler())

        os.register_at_fork(after_in_child=unrelay)


async def _drive(ctx: ProcessContext, coro: Any) -> None:
    ctx._bind_loop(asyncio.get_running_loop())
    await coro


def worker_main(chan_fd: int, mem_fd: int) -> NoReturn:
    """Run a worker on its channel and control page, then exit the process."""
    code = 0
    try:
        _Worker(chan_fd, mem_fd).run()
    except BaseException:
        traceback.print_exc()
        code = 70
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, OSError, ValueError):
                stream.flush()
        os._exit(code)


# ======================================================================================
# Orchestrator side
# ======================================================================================


class RemoteSystem(Protocol):
    """What `ProcessRunner` uses of a system."""

    @property
    def path(self) -> str: ...

    @property
    def suspend_mode(self) -> str: ...

    def _remote_spec(self) -> tuple[type, str, dict[str, Any]]: ...


def _unsendable(exc: BaseException) -> str:
    return f"cannot be sent to a process: {exc}; use a picklable value or executor='thread'"


class MainRef(NamedTuple):
    """A class of the orchestrator's ``__main__``, found again in a worker.

    As with multiprocessing's spawn: a ``python -m pkg.mod`` main is imported by
    its module name; a script is run in the worker as ``__mp_main__`` (its
    ``if __name__ == "__main__":`` block does not run), then the class is taken
    from it by qualified name.
    """

    module: str | None
    file: str | None
    qualname: str

    def resolve(self) -> type:
        if self.module is not None:
            namespace: Any = importlib.import_module(self.module)
        else:
            assert self.file is not None
            module = types.ModuleType("__mp_main__")
            module.__file__ = self.file
            sys.modules["__mp_main__"] = module
            module.__dict__.update(runpy.run_path(self.file, run_name="__mp_main__"))
            namespace = module
        for part in self.qualname.split("."):
            namespace = getattr(namespace, part)
        resolved: type = namespace
        return resolved


def _module_of(path: str, cls: type) -> tuple[str, type | MainRef]:
    """The module the fork server imports before forking, and how the worker finds `cls`."""
    module = getattr(cls, "__module__", None) or "__main__"
    qualname = cls.__qualname__
    problem = None
    if "<locals>" in qualname:
        problem = "is defined inside a function"
    elif module in ("__main__", "__mp_main__"):
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            return spec.name, MainRef(spec.name, None, qualname)
        file = getattr(main, "__file__", None)
        if file:
            return "statesys", MainRef(None, os.path.abspath(file), qualname)
        problem = "lives in an interactive session"
    if problem is not None:
        raise ConfigError(
            path,
            "executor",
            f"cannot be sent to a process: class {qualname} {problem}, and a worker process finds the "
            "class by module and name; define it at the top level of a module or script, or use "
            "executor='thread'",
        )
    return module, cls


def _pickle_spec(path: str, cls: type | MainRef, name: str, config: Mapping[str, Any]) -> bytes:
    parts = itertools.chain((("executor", cls),), config.items())
    return _pickle_naming(path, (cls, name, dict(config)), parts, "config")


def _pickle_kwargs(path: str, kwargs: Mapping[str, Any]) -> bytes:
    return _pickle_naming(path, dict(kwargs), kwargs.items(), "kwargs")


def _pickle_naming(path: str, whole: object, parts: Iterable[tuple[str, object]], field: str) -> bytes:
    """`whole` pickled; if it cannot be, a `ConfigError` naming the first of `parts` that cannot,
    or else `field`."""
    try:
        return pickle.dumps(whole, _PICKLE)
    except Exception as exc:
        failure = exc
    for part, value in parts:
        try:
            pickle.dumps(value, _PICKLE)
        except Exception as exc:
            raise ConfigError(path, part, _unsendable(exc)) from exc
    raise ConfigError(path, field, _unsendable(failure)) from failure


def _logging_levels() -> tuple[dict[str, int], int]:
    manager = logging.Logger.manager
    levels = {"": logging.getLogger().level}
    for name, logger in list(manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels, manager.disable


def _dispatch_log(data: dict[str, Any]) -> None:
    record = logging.makeLogRecord(data)
    try:
        logging.getLogger(record.name).handle(record)
    except Exception:  # a handler's own failure must not break the channel
        logging.getLogger(__name__).exception("relaying a log record from process %s", record.process)


def _exit_detail(exitcode: int) -> str:
    if exitcode >= 0:
        return f"exited with code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    return f"was killed by {name}"


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done() or future.get_loop().is_closed():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


class _Link:
    """One worker process as the orchestrator's loop sees it: its channel, page and status."""

    __slots__ = (
        "_chan_open",
        "_inbuf",
        "_outbuf",
        "_runner",
        "_statusbuf",
        "_waiters",
        "chan",
        "dead",
        "error",
        "loop",
        "mm",
        "pid",
        "status_fd",
    )

    def __init__(
        self,
        runner: ProcessRunner,
        loop: asyncio.AbstractEventLoop,
        chan: socket.socket,
        status_fd: int,
        mm: mmap.mmap,
    ) -> None:
        self._runner = runner
        self.chan = chan
        self.status_fd = status_fd
        self.mm = mm
        self.pid: int | None = None
        self.dead = False
        #: Why the process is gone, as raised by later calls (WorkerDied or ConfigError).
        self.error: Exception | None = None
        self._chan_open = True
        self._inbuf = bytearray()
        self._outbuf = bytearray()
        self._statusbuf = bytearray()
        self._waiters: list[asyncio.Future[None]] = []
        self.loop = loop
        loop.add_reader(chan.fileno(), self._on_chan)
        loop.add_reader(status_fd, self._on_status)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Move the readers to `loop` (a system driven by successive ``asyncio.run``)."""
        if loop is self.loop:
            return
        self._unregister()
        self.loop = loop
        self._waiters = []
        if not self.dead:
            if self._chan_open:
                loop.add_reader(self.chan.fileno(), self._on_chan)
            loop.add_reader(self.status_fd, self._on_status)
            if self._outbuf:
                loop.add_writer(self.chan.fileno(), self._on_writable)

    def _unregister(self) -> None:
        loop = self.loop
        if loop.is_closed():
            return
        loop.remove_reader(self.chan.fileno())
        loop.remove_reader(self.status_fd)
        loop.remove_writer(self.chan.fileno())

    def send(self, message: object) -> None:
        if self.dead:
            return
        data = _frame(message)
        if self._outbuf:
            self._outbuf += data
            return
        try:
            sent = self.chan.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return  # the worker is gone; its exit report follows
        if sent < len(data):
            self._outbuf += data[sent:]
            self.loop.add_writer(self.chan.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self.chan.send(self._outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(self._outbuf)
        del self._outbuf[:sent]
        if not self._outbuf:
            self.loop.remove_writer(self.chan.fileno())

    def shutdown_write(self) -> None:
        """End the channel towards the worker: an idle worker exits when it reads the EOF."""
        self._outbuf.clear()
        if not self.loop.is_closed():
            self.loop.remove_writer(self.chan.fileno())
        with contextlib.suppress(OSError):
            self.chan.shutdown(socket.SHUT_WR)

    def _on_chan(self) -> None:
        while self._chan_open:
            try:
                data = self.chan.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self._chan_open = False
                if not self.loop.is_closed():
                    self.loop.remove_reader(self.chan.fileno())
                break
            self._inbuf += data
        for message in _unframe(self._inbuf):
            self._runner._on_message(message)

    def _on_status(self) -> None:
        eof = False
        while True:
            try:
                data = os.read(self.status_fd, 4096)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                eof = True
                break
            self._statusbuf += data
        for kind, value, text in _forkserver.parse_status(self._statusbuf):
            if kind == b"P":
                self.pid = value
            elif kind == b"E":
                self._died(None, text, spawn_failed=True)
            elif kind == b"F":
                self._died(None, f"could not be started: {text}")
            elif kind == b"X":
                exitcode = os.waitstatus_to_exitcode(value)
                self._died(exitcode, _exit_detail(exitcode))
        if eof and not self.dead:
            # The server died (its workers die with it, by PR_SET_PDEATHSIG), so
            # nobody will kill this group: take down what the worker started.
            if self.pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
            self._died(None, "was lost: the fork server ended without reporting it")

    def _died(self, exitcode: int | None, detail: str, *, spawn_failed: bool = False) -> None:
        if self.dead:
            return
        # What the worker wrote before it died comes first (its last logs, results).
        self._on_chan()
        self.dead = True
        path = self._runner._system.path
        if spawn_failed:
            self.error = ConfigError(
                path,
                "executor",
                f"cannot be sent to a process: {detail}; fix the import, or use executor='thread'",
            )
        else:
            self.error = WorkerDied(path, self.pid or 0, exitcode, detail)
        self._unregister()
        self._runner._on_exit(self, self.error)
        for waiter in self._waiters:
            _settle(waiter, None)
        self._waiters.clear()

    def wait_pid(self) -> int:
        """The worker's pid; blocks (briefly) until the fork server has forked it."""
        deadline = time.monotonic() + _PID_WAIT
        while self.pid is None and not self.dead:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self._runner._system.path}: the fork server did not answer")
            ready, _, _ = select.select([self.status_fd], [], [], left)
            if ready:
                self._on_status()
        if self.pid is None:
            assert self.error is not None
            raise self.error
        return self.pid

    async def wait_dead(self, timeout: float) -> bool:
        """Wait up to `timeout` for the exit report; True once the worker is dead."""
        if not self.dead:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            await asyncio.wait([waiter], timeout=timeout)
        return self.dead

    def abandon(self, detail: str) -> None:
        """Give up on a worker whose death is never reported (the fork server is stuck)."""
        self._died(None, detail)

    def dispose(self) -> None:
        if self.status_fd < 0:
            return
        if not self.dead:
            self.dead = True
            self._unregister()
        self.chan.close()
        os.close(self.status_fd)
        self.status_fd = -1
        self.mm.close()


class ProcessRunner:
    """Runs one system's hooks and main in a dedicated worker process.

    The worker is forked (by the fork server) on the first `call` or `launch`;
    `close` ends it and waits until it and every process of its group are gone
    and reaped.  A hook that raises raises `RemoteError` from `call`.  The future
    of `launch` ends with None when main returns, `RemoteError` when it raises,
    `Terminating` when it ended because `stop` asked (at a checkpoint, by
    SIGTERM, or killed), and `WorkerDied` when the process died otherwise.

    After a death, `call` raises `WorkerDied`, while `launch` starts a new
    worker and replays the last successful ``prepare`` there first, so that a
    restarted main always runs in a prepared system.
    """

    __slots__ = (
        "_closed",
        "_flags",
        "_forcing",
        "_jobs",
        "_last_pid",
        "_link",
        "_main",
        "_next_jid",
        "_prepared",
        "_sigstopped",
        "_system",
    )

    def __init__(self, system: RemoteSystem) -> None:
        self._system = system
        self._link: _Link | None = None
        self._jobs: dict[int, asyncio.Future[None]] = {}
        self._next_jid = 0
        self._main: asyncio.Future[None] | None = None
        self._flags = 0
        self._sigstopped = False
        self._forcing = False
        self._prepared: bytes | None = None
        self._closed = False
        self._last_pid = 0

    # -- Runner protocol --------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The worker's pid, valid from the first `call` or `launch` on.

        Reading it never forks and never raises: before any worker was started
        (or when none could be) it is the orchestrator's own pid, where nothing of
        the system has run elsewhere yet; once a worker dies, it stays the dead
        worker's pid until `launch` starts the next one.
        """
        link = self._link
        if link is None:
            return self._last_pid or os.getpid()
        if link.pid is None:
            try:
                return link.wait_pid()
            except Exception:
                return self._last_pid or os.getpid()
        return link.pid

    async def call(self, hook: str, kwargs: Mapping[str, Any]) -> None:
        kw = _pickle_kwargs(self._system.path, kwargs)
        loop = asyncio.get_running_loop()
        link = self._ensure(loop, launching=False)
        if self._main is None or self._main.done():
            self._continue()  # a hook cannot run in a process stopped by signal
        jid, future = self._job(loop)
        link.send(("call", jid, hook, kw))
        await future
        if hook == "prepare":
            self._prepared = kw

    def launch(self) -> asyncio.Future[None]:
        if self._main is not None and not self._main.done():
            raise RuntimeError(f"{self._system.path}: main is already running")
        loop = asyncio.get_running_loop()
        respawn = self._link is not None and self._link.dead
        link = self._ensure(loop, launching=True)
        # A new main starts with no request pending (a restart follows a stop request
        # or a suspension of the main before it).
        self._set_flags(0)
        self._forcing = False
        self._continue()
        jid, future = self._job(loop)
        self._main = future
        link.send(("main", jid, self._prepared if respawn else None))
        return future

    def suspend(self) -> None:
        link = self._live()
        if link is None:
            return
        self._set_flags(self._flags | _SUSPENDED)
        if self._system.suspend_mode == "signal":
            self._signal(signal.SIGSTOP)
            self._sigstopped = True

    def resume(self) -> None:
        link = self._live()
        if link is None:
            return
        self._set_flags(self._flags & ~_SUSPENDED)
        link.send(("poke",))
        self._continue()

    def request_stop(self) -> None:
        link = self._live()
        if link is None:
            return
        self._set_flags(self._flags | _STOPPING)
        link.send(("poke",))

    async def stop(self, grace: float) -> str | None:
        main, link = self._main, self._live()
        if main is None or main.done() or link is None:
            self._continue()  # main ended while suspended by signal: teardown must run
            return None
        link.bind(asyncio.get_running_loop())
        self._set_flags((self._flags | _TERMINATING | _STOPPING) & ~_SUSPENDED)
        link.send(("poke",))
        if await _ends(main, grace):
            return None
        # From here on, a death of the worker is the termination we asked for.
        self._forcing = True
        self._signal(signal.SIGTERM)
        # A stopped process acts on SIGTERM only once continued.
        self._signal(signal.SIGCONT)
        self._sigstopped = False
        if await _ends(main, grace):
            return f"did not stop within {grace:g}s: SIGTERM"
        self._signal(signal.SIGKILL)
        if not await link.wait_dead(_KILL_WAIT):
            link.abandon(f"did not report its end {_KILL_WAIT:g}s after SIGKILL")
        return f"did not stop within {grace:g}s, nor {grace:g}s after SIGTERM: SIGKILL"

    async def close(self) -> None:
        self._closed = True
        link = self._link
        if link is None:
            return
        try:
            if not link.dead:
                link.bind(asyncio.get_running_loop())
                if self._main is not None and not self._main.done():
                    # Not stopped before: no grace left to give.
                    self._forcing = True
                    self._signal(signal.SIGKILL)
                else:
                    link.shutdown_write()
                    self._continue()
                if not await link.wait_dead(_CLOSE_WAIT):
                    self._signal(signal.SIGKILL)
                    if not await link.wait_dead(_KILL_WAIT):
                        link.abandon(f"did not report its end {_KILL_WAIT:g}s after SIGKILL")
        finally:
            if not link.dead:
                # Cancelled half-way: leave nothing running; a later close finishes.
                self._signal(signal.SIGKILL)
        if self._link is link:
            self._last_pid = link.pid or self._last_pid
            self._link = None
            link.dispose()
        # Nobody is left to await a main that closing ended.
        main = self._main
        if main is not None and main.done() and not main.cancelled():
            main.exception()

    # -- internals --------------------------------------------------------------------

    def _ensure(self, loop: asyncio.AbstractEventLoop, *, launching: bool) -> _Link:
        if self._closed:
            raise RuntimeError(f"{self._system.path}: its process runner is closed")
        link = self._link
        if link is not None:
            if not link.dead:
                link.bind(loop)
                return link
            if not launching:
                assert link.error is not None
                raise link.error
            self._last_pid = link.pid or self._last_pid
            link.dispose()
            self._link = None
        self._link = self._spawn(loop)
        self._flags = 0
        self._sigstopped = False
        return self._link

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> _Link:
        system = self._system
        cls, name, config = system._remote_spec()
        module, ref = _module_of(system.path, cls)
        spec = _pickle_spec(system.path, ref, name, config)
        server = _forkserver.get()
        chan, theirs = socket.socketpair()
        status_r, status_w = os.pipe()
        memfd = os.memfd_create("statesys-control", os.MFD_CLOEXEC)
        mm: mmap.mmap | None = None
        try:
            os.ftruncate(memfd, mmap.PAGESIZE)
            mm = mmap.mmap(memfd, mmap.PAGESIZE)
            server.fork(module, (theirs.fileno(), memfd, status_w))
        except BaseException:
            chan.close()
            os.close(status_r)
            if mm is not None:
                mm.close()
            raise
        finally:
            theirs.close()
            os.close(status_w)
            os.close(memfd)
        chan.setblocking(False)
        os.set_blocking(status_r, False)
        link = _Link(self, loop, chan, status_r, mm)
        link.send(("boot", system.path, spec, _logging_levels(), os.getcwd(), dict(os.environ)))
        return link

    def _job(self, loop: asyncio.AbstractEventLoop) -> tuple[int, asyncio.Future[None]]:
        self._next_jid += 1
        future: asyncio.Future[None] = loop.create_future()
        self._jobs[self._next_jid] = future
        return self._next_jid, future

    def _live(self) -> _Link | None:
        link = self._link
        return link if link is not None and not link.dead else None

    def _set_flags(self, flags: int) -> None:
        self._flags = flags
        link = self._link
        if link is not None and not link.dead:
            link.mm[0] = flags

    def _continue(self) -> None:
        """Undo a signal suspension (SIGCONT), if this runner made one."""
        if self._sigstopped:
            self._sigstopped = False
            self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        """Send `sig` to the worker's process group (the worker and what it started)."""
        link = self._live()
        if link is None:
            return
        with contextlib.suppress(ProcessLookupError, WorkerDied, ConfigError):
            os.killpg(link.wait_pid(), sig)

    def _on_message(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "log":
            _dispatch_log(message[1])
            return
        if kind != "done":
            return
        _, jid, outcome = message
        future = self._jobs.pop(jid, None)
        if future is None:
            return
        path = self._system.path
        if outcome is None:
            _settle(future, None)
        elif outcome[0] == "terminated":
            if future is self._main:
                _settle(future, Terminating(path))
            else:
                _settle(future, RemoteError(path, "Terminating", "interrupted by SIGTERM", ""))
        else:
            _, type_name, text, remote_tb = outcome
            _settle(future, RemoteError(path, type_name, text, remote_tb))

    def _on_exit(self, link: _Link, error: Exception) -> None:
        jobs, self._jobs = self._jobs, {}
        for future in jobs.values():
            if future is self._main and self._forcing:
                _settle(future, Terminating(self._system.path))
            else:
                _settle(future, error)


async def _ends(future: asyncio.Future[None], timeout: float) -> bool:
    done, _ = await asyncio.wait([future], timeout=max(timeout, 0.0))
    return bool(done)
