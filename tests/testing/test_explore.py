"""The explorer: every reachable configuration, coverage, shortest traces, depth and budget."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from statesys import DEFAULT_LIFECYCLE, System
from statesys.testing import Exploration, InvariantViolation, default_depth, explore
from statesys.testing import _explore as explore_module

from . import PROBE_ARGUMENTS, Gpu, Parked, Probe, gpu_farm, tree

EVERY_TRANSITION = frozenset((r.source, r.trigger, r.dest) for r in DEFAULT_LIFECYCLE.routes())


@pytest.fixture
def no_depth_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the depths themselves: ignore a ``--statesys-depth`` given to this run."""
    monkeypatch.setattr(explore_module, "_depth_option", None)


def test_the_default_lifecycle_is_covered_completely() -> None:
    report = explore(System)
    assert report.ok and report.complete and not report.truncated
    assert report.max_depth == default_depth()
    assert report.states == frozenset(DEFAULT_LIFECYCLE.states)
    assert report.transitions == EVERY_TRANSITION
    assert not report.missing_states and not report.missing_transitions
    assert str(report).startswith("ok: ")
    assert "transitions 12/12" in report.summary()
    assert report.check() is report


def test_a_probe_with_failing_prepares_is_covered_completely() -> None:
    report = explore(Probe, arguments=PROBE_ARGUMENTS)
    assert report.ok and report.complete
    assert report.transitions == EVERY_TRANSITION


def test_a_tree_is_covered_completely() -> None:
    report = explore(tree, arguments=PROBE_ARGUMENTS)
    assert report.ok and report.complete
    assert report.transitions == EVERY_TRANSITION
    assert report.configurations > 100


def test_history_keeps_configurations_apart() -> None:
    with_history = explore(Probe, history=True)
    without = explore(Probe, history=False)
    assert with_history.configurations > without.configurations
    assert explore(Probe).configurations == with_history.configurations  # one system: on by default
    # the 6-trigger bug needs history: without it "enable" merges into "activate"
    assert not explore(Parked).ok
    assert explore(Parked, history=False).ok


@pytest.mark.usefixtures("no_depth_option")
def test_a_shallow_exploration_says_how_far_it_got() -> None:
    report = explore(System, 2)
    assert report.ok and not report.complete and report.depth == 2
    assert "completed" not in report.states and "intermitted" not in report.states
    assert ("running", "suspend", "intermitted") in report.missing_transitions
    assert "never taken" in report.summary()


@pytest.mark.usefixtures("no_depth_option")
def test_the_trigger_budget_stops_an_exploration() -> None:
    report = explore(tree, max_triggers=500)
    assert report.ok and report.truncated and not report.complete
    assert report.steps >= 500
    assert report.depth < 12
    assert "budget" in report.summary()


def test_a_guard_that_refuses_is_not_a_failure() -> None:
    report = explore(Gpu, arguments={"activate": [{}, {"fail": True}]})
    assert report.ok and report.complete
    report = explore(lambda: Gpu(gpus=0))
    assert report.ok
    assert "running" not in report.states  # the guard kept it from ever starting
    assert explore(gpu_farm).ok


def test_invariants_are_checked_and_the_trace_is_shortest() -> None:
    def never_intermitted(system: System) -> None:
        assert system.state != "intermitted", "intermitted"

    report = explore(Probe, invariants=[never_intermitted])
    found = report.counterexample
    assert found is not None and not report.ok
    assert [str(s) for s in found.steps] == ["activate()", "start()", "suspend()"]
    assert "invariant never_intermitted failed" in found.message
    assert "await system.suspend()  # fails here" in found.script
    with pytest.raises(InvariantViolation) as info:
        report.check()
    assert info.value.steps == found.steps
    assert str(found) in str(report)


def test_an_invariant_broken_before_any_step_is_reported() -> None:
    report = explore(Probe, invariants=[lambda system: False])
    assert report.counterexample is not None
    assert report.counterexample.steps == ()


def test_replays_must_be_deterministic() -> None:
    counter = itertools.count()

    def flaky() -> System:
        # every other build fails to prepare: a replay reaches another configuration
        class Flaky(Probe):
            def prepare(self, fail: bool = False, **kwargs: Any) -> None:
                if next(counter) % 2:
                    raise RuntimeError("flaky")

        return Flaky()

    report = explore(flaky, 2)
    assert report.counterexample is not None
    assert "deterministic" in report.counterexample.message


@pytest.mark.usefixtures("no_depth_option")
def test_the_command_line_depth_raises_depths_and_never_lowers_them(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_depth() == explore_module.DEFAULT_DEPTH == 12
    monkeypatch.setattr(explore_module, "_depth_option", 20)
    assert default_depth() == 20
    assert explore(System, 2).max_depth == 20
    assert explore(System, 30).max_depth == 30  # an explicit deeper one holds
    monkeypatch.setattr(explore_module, "_depth_option", 3)
    assert default_depth() == 12
    assert explore(System).max_depth == 12
    assert explore(System, 2).max_depth == 3


def test_unknown_triggers_in_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="drain"):
        explore(Probe, arguments={"drain": [{}]})


@pytest.mark.usefixtures("no_depth_option")
def test_the_report_is_a_plain_record() -> None:
    report = explore(System, 1)
    assert isinstance(report, Exploration)
    assert report.configurations == len({"initial", "ready", "disabled", "terminated"}) + 1  # two terminates
