"""Runners: where a system's hooks execute (the loop, a thread, or its own process).

A `Runner` is created per system when its first hook must run.  The system's
trigger coroutines own the state; a runner only executes code and reports back.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .._context import LocalContext

if TYPE_CHECKING:
    from .._system import System

__all__ = ["EXECUTORS", "LocalRunner", "Runner", "make_runner"]

#: Executors a system may name; ``auto`` is ``async`` for an ``async def main``, else ``thread``.
EXECUTORS = ("auto", "async", "thread", "process")


class Runner(Protocol):
    """What a system's triggers need from the place its code runs."""

    @property
    def pid(self) -> int:
        """The pid of the process where the system's code runs."""
        ...

    async def call(self, hook: str, kwargs: Mapping[str, Any]) -> None:
        """Run ``system.<hook>(**kwargs)`` (prepare, shutdown, teardown) to completion."""
        ...

    def launch(self) -> asyncio.Future[None]:
        """Start ``main(ctx)``; the future ends with main (its exception, if it raised)."""
        ...

    def suspend(self) -> None:
        """Ask the running main to pause (cooperatively, or by signal where configured)."""
        ...

    def resume(self) -> None:
        """Let a paused main go on."""
        ...

    def request_stop(self) -> None:
        """Set ``ctx.stopping``: a main that runs until told should return."""
        ...

    async def stop(self, grace: float) -> str | None:
        """Terminate main: request, wait `grace`, then force; say what had to be done, if anything."""
        ...

    async def close(self) -> None:
        """Release what the runner holds (its process, if any); idempotent."""
        ...


def _wants_ctx(fn: Any) -> bool:
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
    except (TypeError, ValueError):
        return True
    return bool(params)


class LocalRunner:
    """Runs hooks in this process: coroutines on the loop, sync code in a thread if asked."""

    __slots__ = ("_ctx", "_main", "_system", "_threaded")

    def __init__(self, system: System, threaded: bool) -> None:
        self._system = system
        self._threaded = threaded
        self._ctx: LocalContext | None = None
        self._main: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int:
        return os.getpid()

    async def call(self, hook: str, kwargs: Mapping[str, Any]) -> None:
        fn = getattr(self._system, hook)
        if inspect.iscoroutinefunction(fn):
            await fn(**kwargs)
        elif self._threaded:
            await asyncio.to_thread(fn, **kwargs)
        else:
            fn(**kwargs)

    def launch(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        ctx = self._ctx = LocalContext(self._system.path, loop)
        main = self._system.main
        args = (ctx,) if _wants_ctx(main) else ()
        if inspect.iscoroutinefunction(main):
            self._main = loop.create_task(main(*args), name=f"statesys:{self._system.path}")
            return self._main
        future: asyncio.Future[None] = loop.create_future()

        def deliver(exc: BaseException | None) -> None:
            if future.done():
                return
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

        def body() -> None:
            outcome: BaseException | None = None
            try:
                main(*args)
            except BaseException as exc:  # handed to the loop, which decides what it means
                outcome = exc
            # if the loop is gone, the system was closed without this main
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, outcome)

        # A dedicated daemon thread, not the loop's default pool: a pool of
        # cpu+4 workers would queue the 7th long-running main behind the others.
        threading.Thread(target=body, name=f"statesys:{self._system.path}", daemon=True).start()
        self._main = future
        return future

    def suspend(self) -> None:
        if self._ctx is not None:
            self._ctx.suspend()

    def resume(self) -> None:
        if self._ctx is not None:
            self._ctx.resume()

    def request_stop(self) -> None:
        if self._ctx is not None:
            self._ctx.request_stop()

    async def stop(self, grace: float) -> str | None:
        main, ctx = self._main, self._ctx
        if main is None or ctx is None or main.done():
            return None
        ctx.request_terminate()
        done, _ = await asyncio.wait([main], timeout=grace)
        if done:
            return None
        if isinstance(main, asyncio.Task):
            main.cancel()
            await asyncio.wait([main], timeout=grace)
            return f"main did not stop within {grace:g}s; cancelled"
        return f"main did not stop within {grace:g}s; its thread was abandoned"

    async def close(self) -> None:
        self._main = None


def make_runner(system: System, executor: str) -> Runner:
    """The runner for `executor` (see `EXECUTORS`)."""
    if executor == "process":
        from ._process import ProcessRunner

        return ProcessRunner(system)
    if executor == "auto":
        executor = "async" if inspect.iscoroutinefunction(system.main) else "thread"
    return LocalRunner(system, threaded=executor == "thread")
