"""pytest plugin (entry point ``pytest11``): options, fixtures and failure reports of the kit.

Loaded in every pytest session where statesys is installed, so it imports nothing
beyond pytest and asyncio until a fixture or the depth option needs it.

- ``--statesys-depth N`` raises the exploration depth of `statesys.testing.explore`
  (and of every ``lifecycle_test(...).TestCase``) to at least N for the session.
- ``statesys_loop``: a fresh event loop for the test, closed cleanly afterwards;
  ``statesys_run``: ``run(awaitable)`` on that loop.
- A failure found by the kit gets a "statesys replay script" section: a snippet
  that rebuilds the system and fires the failing steps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("statesys")
    group.addoption(
        "--statesys-depth",
        type=int,
        default=None,
        help="raise the depth of statesys.testing's exhaustive explorations to at least this (default 12)",
    )


def pytest_configure(config: pytest.Config) -> None:
    depth: int | None = config.getoption("--statesys-depth", None)
    if depth is None:
        return
    if depth < 1:
        raise pytest.UsageError(f"--statesys-depth: expected a depth of at least 1, got {depth}")
    from . import _explore

    _explore._depth_option = depth


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.getoption("--statesys-depth", None) is not None:
        from . import _explore

        _explore._depth_option = None


@pytest.fixture
def statesys_depth(request: pytest.FixtureRequest) -> int | None:
    """The exploration depth asked for on the command line, if any."""
    value: int | None = request.config.getoption("--statesys-depth")
    return value


@pytest.fixture
def statesys_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop to run systems on; afterwards its tasks are cancelled and it is closed."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


@pytest.fixture
def statesys_run(statesys_loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[Any]], Any]:
    """``run(awaitable)``: run it to completion on `statesys_loop` and return its result.

    ``statesys_run(app.activate())``, then ``statesys_run(settle(app))`` to let
    cascades and fail-fast terminations finish.
    """

    def run(awaitable: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await awaitable

        return statesys_loop.run_until_complete(wrapped())

    return run


def _script_of(exc: BaseException | None, depth: int = 0) -> tuple[BaseException, str] | None:
    """The exception carrying a replay script, searched through causes and groups."""
    if exc is None or depth > 10:
        return None
    script = getattr(exc, "statesys_script", None)
    if isinstance(script, str):
        return exc, script
    for inner in getattr(exc, "exceptions", ()):
        if found := _script_of(inner, depth + 1):
            return found
    return _script_of(exc.__cause__ or exc.__context__, depth + 1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # after the other hooks: unittest's own hook only now put the failure into `call`
    found = _script_of(call.excinfo.value) if call.excinfo is not None and report.failed else None
    if found is None:
        return report
    exc, script = found
    # the script gets a section of its own: keep the traceback free of the same text
    with contextlib.suppress(AttributeError):  # exceptions with slots keep it in the message
        exc.statesys_show_script = False  # type: ignore[attr-defined]
    notes = getattr(exc, "__notes__", None)
    if notes:
        notes[:] = [n for n in notes if script not in n]
    if call.when == "call" and call.excinfo is not None:
        report.longrepr = item.repr_failure(call.excinfo)
    report.sections.append(("statesys replay script", script))
    return report
