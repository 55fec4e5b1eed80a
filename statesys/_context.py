"""The handle a running `main(ctx)` uses to cooperate with suspend, complete and terminate."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Protocol

__all__ = ["Context", "LocalContext", "Terminating"]


class Terminating(BaseException):
    """Raised inside `main` by a checkpoint once termination was requested.

    A `BaseException`, like `asyncio.CancelledError`, so that a main's broad
    ``except Exception`` cannot swallow a termination request.
    """


class Context(Protocol):
    """What `main(ctx)` sees, whichever executor runs it."""

    @property
    def path(self) -> str:
        """The path of the system whose main this is."""
        ...

    @property
    def stopping(self) -> bool:
        """True once the system was asked to finish (``complete()``) or to terminate."""
        ...

    def checkpoint(self) -> None:
        """Block while suspended; raise `Terminating` once termination was requested."""
        ...

    async def acheckpoint(self) -> None:
        """`checkpoint` for an ``async def main``."""
        ...

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early when asked to finish or terminate; ends with a checkpoint."""
        ...

    async def asleep(self, seconds: float) -> None:
        """`sleep` for an ``async def main``."""
        ...


class LocalContext:
    """Context for mains that run in the orchestrator's process (loop task or thread).

    The orchestrator's loop is the only writer; a thread main reads through
    `threading.Event`s and an async main waits on `asyncio.Event`s set beside them.
    """

    __slots__ = ("_aresumed", "_astop", "_loop", "_resumed", "_stop", "_terminate", "path")

    def __init__(self, path: str, loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self._loop = loop
        self._resumed = threading.Event()
        self._resumed.set()
        self._stop = threading.Event()
        self._terminate = threading.Event()
        self._aresumed = asyncio.Event()
        self._aresumed.set()
        self._astop = asyncio.Event()

    # -- orchestrator side (called on the loop) ----------------------------------------

    def suspend(self) -> None:
        self._resumed.clear()
        self._aresumed.clear()

    def resume(self) -> None:
        self._resumed.set()
        self._aresumed.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._astop.set()

    def request_terminate(self) -> None:
        self._terminate.set()
        self.request_stop()
        self.resume()

    # -- main side ---------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def suspended(self) -> bool:
        return not self._resumed.is_set()

    def checkpoint(self) -> None:
        if not self._resumed.is_set():
            self._resumed.wait()
        if self._terminate.is_set():
            raise Terminating(self.path)

    async def acheckpoint(self) -> None:
        if not self._aresumed.is_set():
            await self._aresumed.wait()
        if self._terminate.is_set():
            raise Terminating(self.path)

    def sleep(self, seconds: float) -> None:
        self.checkpoint()
        self._stop.wait(seconds)
        self.checkpoint()

    async def asleep(self, seconds: float) -> None:
        await self.acheckpoint()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._astop.wait(), seconds)
        await self.acheckpoint()
