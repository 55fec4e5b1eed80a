"""The pytest plugin: fixtures, the depth option, and the replay script in failure reports."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from statesys.testing import settle

from . import Probe, tree

pytest_plugins = ["pytester"]


def test_the_loop_fixtures_run_a_tree(
    statesys_loop: asyncio.AbstractEventLoop, statesys_run: Callable[[Awaitable[Any]], Any]
) -> None:
    app = tree()
    assert statesys_run(app.activate()) == "ready"
    statesys_run(app.start())
    statesys_run(app["a"].terminate("gone"))
    statesys_run(settle(app))
    assert [n.state for n in app.walk()] == ["terminated"] * 3
    assert not statesys_loop.is_closed()


def test_the_loop_fixture_cancels_what_is_left(statesys_run: Callable[[Awaitable[Any]], Any]) -> None:
    probe = Probe()
    statesys_run(probe.activate())
    statesys_run(probe.start())  # main keeps running: the fixture cancels it afterwards


def test_the_depth_fixture_gives_the_option(
    statesys_depth: int | None, request: pytest.FixtureRequest
) -> None:
    assert statesys_depth == request.config.getoption("--statesys-depth")


FAILING = """
from statesys import DEFAULT_LIFECYCLE, Lifecycle, System
from statesys.testing import default_depth, lifecycle_test

def crash(system, **kwargs):
    raise RuntimeError("resume crashed")

states, transitions = DEFAULT_LIFECYCLE.declaration()
for t in transitions:
    if t["trigger"] == "resume":
        t["after"] = [crash]
CRASHY = Lifecycle(states, transitions, name="crashy")

class Crashy(System, lifecycle=CRASHY):
    pass

TestCrashy = lifecycle_test(Crashy).TestCase

def test_depth():
    assert default_depth() == {depth}
"""


def test_a_failure_report_shows_a_replay_script(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_crashy=FAILING.format(depth=15))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--statesys-depth", "15", "-q")
    out = result.stdout.str()
    assert "statesys replay script" in out
    assert "await system.resume()  # fails here: resume() raised RuntimeError: resume crashed" in out
    assert "from test_crashy import Crashy" in out
    result.assert_outcomes(passed=2, failed=2)  # the depth test, the policy check; machine and explorer fail


def test_a_bad_depth_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--statesys-depth", "0")
    assert "--statesys-depth: expected a depth of at least 1, got 0" in result.stderr.str()
