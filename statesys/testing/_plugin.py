"""pytest plugin (entry point ``pytest11``): options and fixtures of the testing kit."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("statesys")
    group.addoption(
        "--statesys-depth",
        type=int,
        default=None,
        help="depth of statesys.testing's exhaustive exploration (default: the kit's own)",
    )


@pytest.fixture
def statesys_depth(request: pytest.FixtureRequest) -> int | None:
    """The exploration depth asked for on the command line, if any."""
    value: int | None = request.config.getoption("--statesys-depth")
    return value
