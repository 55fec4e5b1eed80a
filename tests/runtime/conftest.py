"""Every runtime test ends with no process of its own left: no worker, grandchild or zombie."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psutil
import pytest

from statesys.runtime import _forkserver


def descendants() -> list[psutil.Process]:
    """This process's descendants, the long-lived fork server aside."""
    server = _forkserver.server_pid()
    return [p for p in psutil.Process().children(recursive=True) if p.pid != server]


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 2.0
    left = descendants()
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = descendants()
    assert not left, [(p.pid, p.name(), p.status()) for p in left]
