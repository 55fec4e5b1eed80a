"""Shared fixtures: every test leaves no process and no stray thread behind."""

from __future__ import annotations

import logging

import pytest

from statesys._events import LOGGER


@pytest.fixture(autouse=True)
def _quiet_statesys_logger() -> None:
    """Keep the library logger as an application would find it: unconfigured."""
    saved = (LOGGER.level, list(LOGGER.handlers), LOGGER.propagate)
    yield
    LOGGER.setLevel(saved[0])
    LOGGER.handlers[:] = saved[1]
    LOGGER.propagate = saved[2]


@pytest.fixture
def capture_events(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="statesys")
    return caplog
