"""The orchestrator: one asyncio loop owns all state; signals and other threads go through it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .._system import System

__all__ = ["Orchestrator", "supervise"]

T = TypeVar("T")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def supervise(
    root: System, *, deadline: float = 10.0, handle_signals: bool = True, **kwargs: Any
) -> str:
    """Run `root` to its end; on SIGINT or SIGTERM terminate the tree and re-raise.

    The tree is terminated in reverse start order; whatever is still open after
    `deadline` seconds (or at a second signal) is cut off: process groups are
    killed.  Then SIGINT surfaces as `KeyboardInterrupt` and SIGTERM as
    ``SystemExit(143)``, so a program exits non-zero as Python programs do.
    """
    loop = asyncio.get_running_loop()
    received: list[int] = []
    run = loop.create_task(root.run(**kwargs), name=f"statesys:run:{root.path}")
    interrupted = asyncio.Event()

    def on_signal(signum: int) -> None:
        received.append(signum)
        interrupted.set()

    installed = []
    if handle_signals and threading.current_thread() is threading.main_thread():
        for signum in _SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, on_signal, signum)
                installed.append(signum)
    try:
        waiter = loop.create_task(interrupted.wait())
        try:
            await asyncio.wait([run, waiter], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # cancelled from outside (asyncio.run on Ctrl-C): same path
            received.append(signal.SIGINT)
        waiter.cancel()
        if not received:
            return run.result()
        name = signal.Signals(received[0]).name
        interrupted.clear()
        await _terminate_within(root, f"interrupted by {name}", deadline, interrupted)
        run.cancel()
        with contextlib.suppress(BaseException):
            await run
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    if received[0] == signal.SIGTERM:
        raise SystemExit(128 + signal.SIGTERM)
    raise KeyboardInterrupt


async def _terminate_within(root: System, cause: str, deadline: float, again: asyncio.Event) -> None:
    if not root.closed:
        ending = asyncio.ensure_future(root.terminate(cause))
        second = asyncio.ensure_future(again.wait())
        done, _ = await asyncio.wait([ending, second], timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
        second.cancel()
        if ending not in done:
            await _cut_off(root)
            ending.cancel()
            with contextlib.suppress(BaseException):
                await ending
    await _cut_off(root)  # nothing of the tree outlives the orchestrator


async def _cut_off(root: System) -> None:
    for node in root.walk():
        runner = node._runner
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.close()


class Orchestrator:
    """A loop in a background thread that owns a tree; any thread may drive it.

    ``with Orchestrator() as orch: orch.call(app.activate())`` marshals the call
    onto the loop (the single writer) and waits for its result.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="statesys-orchestrator", daemon=True
        )
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the orchestrator's loop; block until it returns (or raises)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "Orchestrator.call() from the orchestrator's own loop would deadlock; await instead"
            )
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def trigger(self, system: System, trigger: str, /, *args: Any, **kwargs: Any) -> str:
        """Fire `trigger` on `system` from any thread; returns the new state."""
        method: Callable[..., Coroutine[Any, Any, str]] = getattr(system, trigger)
        return self.call(method(*args, **kwargs))

    def close(self, root: System | None = None, timeout: float = 30.0) -> None:
        """Terminate `root` if given and still open, then stop the loop and its thread."""
        if self._loop.is_closed():
            return
        if root is not None and not root.closed:
            self.call(root.terminate("orchestrator closed"), timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._loop.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
