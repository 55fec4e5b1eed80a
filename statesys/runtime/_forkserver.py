"""The fork server: one small process that forks the workers of process systems.

The orchestrator must never fork itself (it runs an event loop and may run
threads), and starting a fresh interpreter per worker is slow: 100 workers each
sleeping 1 s take about 14 s with ``spawn`` on 2 cores, 6 s with
multiprocessing's ``forkserver``, 1.2 s with a bare fork (bench/bench_process.py
measures them beside this server).  So the orchestrator starts this server once, lazily, as a fresh
interpreter (``subprocess`` forks with exec, which is safe under threads).  The
server is single-threaded, imports each system's module once before forking (so
every worker inherits it instead of importing it again), and forks one worker
per request.  It also keeps the process tree clean:

- it is a child subreaper, so the grandchildren of a dead worker are reparented
  to it and reaped here, never left as zombies of init;
- when a worker ends, it kills the worker's process group *before* reaping the
  worker (the zombie keeps the group id from being reused), and reports the exit
  status only once the group is empty, so "reported" means "nothing left";
- it watches the orchestrator through a pidfd (and its request socket) and kills
  every worker group when the orchestrator dies, even by SIGKILL;
- each worker asks for SIGKILL when the server dies (``PR_SET_PDEATHSIG``).

Protocol.  Requests are ``SOCK_SEQPACKET`` messages (one message, one request),
each carrying three file descriptors: the worker's end of its channel, its
shared control page and the write end of a *status pipe*.  On the status pipe
the server writes ``P <pid>`` after the fork, then ``X <wait status>`` once the
worker is reaped and its group is empty (or, instead of both, ``E <text>`` when
the system's module cannot be imported, ``F <text>`` when no worker could be
forked), then closes it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import faulthandler
import gc
import importlib
import json
import os
import pickle
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

__all__ = [
    "PR_SET_PDEATHSIG",
    "ForkServer",
    "get",
    "parse_status",
    "prctl",
    "server_pid",
    "shutdown",
    "start_early",
]

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

#: How long a dead worker's group may take to empty before its exit is reported anyway.
_GROUP_DEADLINE = 1.0
#: How long the server waits for its children when it shuts down.
_SHUTDOWN_DEADLINE = 3.0

_libc: Any = None


def prctl(option: int, arg: int) -> None:
    """``prctl(2)`` through libc (Linux only); raises `OSError` on failure."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


# -- status pipe messages --------------------------------------------------------------

_STATUS = struct.Struct("!cq")
#: Kinds whose value is the length of a text that follows: E (the system's module
#: cannot be imported) and F (the worker could not be started).
_TEXT = (b"E", b"F")


def _status_message(kind: bytes, value: int, text: str = "") -> bytes:
    data = text.encode()
    return _STATUS.pack(kind, len(data) if kind in _TEXT else value) + data


def parse_status(buf: bytearray) -> list[tuple[bytes, int, str]]:
    """Take the complete ``(kind, value, text)`` messages off the front of `buf`."""
    out: list[tuple[bytes, int, str]] = []
    while len(buf) >= _STATUS.size:
        kind, value = _STATUS.unpack_from(buf)
        end = _STATUS.size + (value if kind in _TEXT else 0)
        if len(buf) < end:
            break
        text = bytes(buf[_STATUS.size : end]).decode(errors="replace") if kind in _TEXT else ""
        del buf[:end]
        out.append((kind, value, text))
    return out


def _write_status(fd: int, message: bytes) -> None:
    # A status message is far below PIPE_BUF, so the write is atomic; a reader
    # that went away (EPIPE) has nothing left to be told.
    with contextlib.suppress(OSError):
        os.write(fd, message)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# -- the server process ----------------------------------------------------------------


class _Server:
    """The loop of the fork server process (see the module docstring)."""

    def __init__(self, request_fd: int, parent_pid: int) -> None:
        self._requests = socket.socket(fileno=request_fd)
        self._requests.setblocking(False)
        self._parent_pid = parent_pid
        self._pid = os.getpid()
        #: pid -> write end of its status pipe, for every worker not yet reported.
        self._workers: dict[int, int] = {}
        #: pid -> (wait status, deadline): reaped workers whose group is not empty yet.
        self._ending: dict[int, tuple[int, float]] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._parent_fd = -1

    def serve(self) -> None:
        # Ctrl-C belongs to the orchestrator, which stops the tree in order; the
        # server also runs in its own process group, so a terminal never signals it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _exit_on_signal)
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        try:
            self._parent_fd = os.pidfd_open(self._parent_pid)
        except ProcessLookupError:
            return
        except OSError:  # no pidfd (old kernel): the request socket's EOF still tells
            self._parent_fd = -1
        if os.getppid() != self._parent_pid:
            return
        for sock in (self._wake_r, self._wake_w):
            sock.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, _ignore_signal)
        # Preload what every worker runs; later imports are done on request.
        from . import _process  # noqa: F401

        gc.freeze()
        self._selector.register(self._requests, selectors.EVENT_READ, "request")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "child")
        if self._parent_fd >= 0:
            self._selector.register(self._parent_fd, selectors.EVENT_READ, "parent")
        try:
            while True:
                timeout = 0.005 if self._ending else None
                for key, _ in self._selector.select(timeout):
                    if key.data == "request":
                        if not self._take_requests():
                            return
                    elif key.data == "child":
                        _drain(self._wake_r)
                    else:
                        return  # the orchestrator died
                self._reap()
                self._report_empty_groups(time.monotonic())
        finally:
            self._kill_all()

    def _take_requests(self) -> bool:
        """Serve every queued request; False once the orchestrator closed its end."""
        while True:
            try:
                msg, fds, flags, _ = socket.recv_fds(self._requests, 1 << 20, 4)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not msg and not fds:
                return False
            if len(fds) == 3 and flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                os.set_blocking(fds[2], False)
                _write_status(fds[2], _status_message(b"F", 0, "the fork request was too large"))
            elif len(fds) == 3:
                self._fork(msg, fds[0], fds[1], fds[2])
                continue
            for fd in fds:  # nobody to answer: closing the status pipe tells its reader
                os.close(fd)

    def _fork(self, msg: bytes, chan: int, mem: int, status: int) -> None:
        os.set_blocking(status, False)
        module = "?"
        try:
            # Only the orchestrator holds the other end of this socket: its
            # messages are as trusted as the orchestrator itself.
            sys_path, module = pickle.loads(msg)
            if sys_path != sys.path:
                sys.path[:] = sys_path
            if module not in sys.modules:
                importlib.import_module(module)
                gc.freeze()  # keep the collector from touching (and copying) inherited pages
        except Exception as exc:
            _write_status(status, _status_message(b"E", 0, f"importing {module!r} failed: {exc!r}"))
            for fd in (chan, mem, status):
                os.close(fd)
            return
        # Whatever an import printed must not be buffered twice, in server and worker.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, OSError, ValueError):
                stream.flush()
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN, ENOMEM: this request fails, the server goes on
            _write_status(status, _status_message(b"F", 0, f"fork failed: {exc}"))
            for fd in (chan, mem, status):
                os.close(fd)
            return
        if pid == 0:
            self._become_worker(chan, mem, status)
        # Both sides set the group (the shell's way): whichever runs first, the
        # group exists once the pid is reported, so a signal to it cannot miss.
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        os.close(chan)
        os.close(mem)
        self._workers[pid] = status
        _write_status(status, _status_message(b"P", pid))

    def _become_worker(self, chan: int, mem: int, status: int) -> NoReturn:
        code = 70
        try:
            os.setpgid(0, 0)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != self._pid:  # the server died before prctl took effect
                os._exit(code)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._selector.close()
            for fd in (status, *self._workers.values()):
                os.close(fd)
            for sock in (self._requests, self._wake_r, self._wake_w):
                sock.close()
            if self._parent_fd >= 0:
                os.close(self._parent_fd)
            from ._process import worker_main

            worker_main(chan, mem)
        finally:
            os._exit(code)

    def _reap(self) -> bool:
        """Reap every child that ended; True while some child is left."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return False
            if info is None:
                return True
            pid = info.si_pid
            if pid in self._workers:
                # Still a zombie here, so its pid (the group id) cannot be reused yet.
                _killpg(pid, signal.SIGKILL)
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                continue
            if pid in self._workers:
                self._ending[pid] = (status, time.monotonic() + _GROUP_DEADLINE)

    def _report_empty_groups(self, now: float) -> None:
        for pid, (status, deadline) in list(self._ending.items()):
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            else:
                if now < deadline:
                    _killpg(pid, signal.SIGKILL)  # members forked since the last kill
                    continue
            del self._ending[pid]
            fd = self._workers.pop(pid)
            _write_status(fd, _status_message(b"X", status))
            os.close(fd)

    def _kill_all(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for pid in self._workers:
            _killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + _SHUTDOWN_DEADLINE
        while True:
            children = self._reap()
            now = time.monotonic()
            self._report_empty_groups(now if now < deadline else float("inf"))
            if (not children and not self._ending) or now >= deadline:
                break
            time.sleep(0.002)
        for fd in self._workers.values():
            os.close(fd)
        self._workers.clear()


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    """SIGCHLD only needs to wake the selector (through the wakeup fd)."""


def _exit_on_signal(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point of the server process: ``main(request_fd, parent_pid)`` from argv."""
    _Server(int(sys.argv[1]), int(sys.argv[2])).serve()


# -- the orchestrator's handle ---------------------------------------------------------

_BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[3]); "
    "from statesys.runtime._forkserver import main; main()"
)


def _sys_path() -> list[str]:
    # '' means the current directory *now*; pin it for a process that may chdir.
    return [p or os.getcwd() for p in sys.path]


class _ForkedProcess:
    """A `subprocess.Popen`-like handle on a server forked from this process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    return None
                self.returncode = os.waitstatus_to_exitcode(status)
            if self.returncode is None:
                self.returncode = 0  # reaped elsewhere
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(["statesys fork server"], timeout or 0.0)
            time.sleep(0.005)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


class ForkServer:
    """The orchestrator's handle on a running fork server process."""

    def __init__(self, *, forked: bool = False) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if forked:
            self._proc: subprocess.Popen[bytes] | _ForkedProcess = self._fork_server(ours, theirs)
            ours.settimeout(30.0)
            self._sock = ours
            self.pid = self._proc.pid
            return
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _BOOT,
                    str(theirs.fileno()),
                    str(os.getpid()),
                    json.dumps(_sys_path()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                process_group=0,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        # A server stuck importing a user module must not hang the loop forever.
        ours.settimeout(30.0)
        self._sock = ours
        self.pid = self._proc.pid

    @staticmethod
    def _fork_server(ours: socket.socket, theirs: socket.socket) -> _ForkedProcess:
        """Fork the server from this process: no interpreter start, no imports to redo.

        Only safe while this process has a single thread and no running loop
        (see `start_early`); then it is the cheapest server there is.
        """
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the server
            code = 0
            try:
                os.setpgid(0, 0)
                # a crash report would print the orchestrator's inherited stack, not ours
                faulthandler.disable()
                ours.close()
                fd = os.dup(theirs.fileno())
                theirs.close()
                _Server(fd, parent).serve()
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        return _ForkedProcess(pid)

    def alive(self) -> bool:
        return self._proc.poll() is None

    def fork(self, module: str, fds: Sequence[int]) -> None:
        """Ask for a worker that inherits `fds` (channel, control page, status pipe)."""
        socket.send_fds(self._sock, [pickle.dumps((_sys_path(), module))], list(fds))

    def close(self, timeout: float = 5.0) -> None:
        """End the server (it kills its workers first) and reap it."""
        self._sock.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


_server: ForkServer | None = None
#: Handles inherited through a fork of the orchestrator: kept so that they are
#: never collected (and their Popen never waited on) in the child.
_inherited: list[ForkServer] = []
_atexit_registered = False


def get() -> ForkServer:
    """The running fork server, started (or restarted, if it died) on demand."""
    global _server, _atexit_registered
    if _server is not None and _server.alive():
        return _server
    if _server is not None:
        _server.close()
    _server = ForkServer()
    if not _atexit_registered:
        atexit.register(shutdown)
        _atexit_registered = True
    return _server


def start_early() -> bool:
    """Start the server by forking this process, if that is safe now; True if it did.

    Safe means one thread and no running event loop: what a program has before
    `asyncio.run`.  The forked server inherits every module already imported, so
    its first worker comes at once instead of after an interpreter start.
    """
    global _server, _atexit_registered
    import asyncio
    import threading

    if _server is not None and _server.alive():
        return False
    if threading.active_count() != 1:
        return False
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop()
        return False
    for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    _server = ForkServer(forked=True)
    if not _atexit_registered:
        atexit.register(shutdown)
        _atexit_registered = True
    return True


def server_pid() -> int | None:
    """The pid of the fork server, if one runs."""
    return _server.pid if _server is not None and _server.alive() else None


def shutdown() -> None:
    """Stop the fork server, killing any worker it still has; the next spawn starts a new one."""
    global _server
    server, _server = _server, None
    if server is not None:
        server.close()


def _forget_in_child() -> None:
    # A process forked from the orchestrator is not its orchestrator: it must not
    # send requests on (or close) the parent's socket; it starts its own server.
    global _server
    if _server is not None:
        _inherited.append(_server)
        _server._sock.close()
        _server = None


os.register_at_fork(after_in_child=_forget_in_child)
