"""The catalogue of planted bugs: the kit catches every one, on every run, with default settings.

Each bug is a buggy user system or lifecycle, or a library mutant applied with
monkeypatch.  The explorer must give the shortest trace (it is deterministic); the
kit's one-line ``TestCase`` must fail on every run (fresh random seeds, no example
database); where the state machine alone finds the bug reliably, so must it.
"""

from __future__ import annotations

import unittest

import pytest
from hypothesis import Phase, settings

from statesys import DefinitionError
from statesys.testing import InvariantViolation, SystemMachine, explore, lifecycle_test

from . import CATALOGUE, Bug, Isolate, Optimistic

SEEDS = range(3)
# The state machine is random: it is asserted alone only where it finds the bug in
# every campaign of the bench (single systems; in trees it is the explorer's job).
MACHINE_FINDS = {
    "hook runs twice",
    "resume after disable/enable",
    "guard bypassed on one path",
    "teardown skipped after a failure",
    "refusal leaves a trace",
    "main before prepare",
}


def apply(bug: Bug, monkeypatch: pytest.MonkeyPatch) -> None:
    if bug.mutate is not None:
        bug.mutate(monkeypatch.setattr)


def machine_of(bug: Bug) -> type[SystemMachine]:
    return lifecycle_test(bug.target, arguments=bug.arguments, invariants=bug.invariants)


@pytest.mark.parametrize("bug", CATALOGUE, ids=lambda b: b.name)
def test_the_explorer_gives_the_shortest_trace(bug: Bug, monkeypatch: pytest.MonkeyPatch) -> None:
    apply(bug, monkeypatch)
    if bug.trace is None:  # unreachable in this tree: the exhaustive policy check sees it
        return
    report = explore(bug.target, arguments=bug.arguments, invariants=bug.invariants)
    assert report.counterexample is not None, f"{bug.name}: not found ({report.summary()})"
    assert tuple(str(s) for s in report.counterexample.steps) == bug.trace
    with pytest.raises(InvariantViolation):
        report.check()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bug", CATALOGUE, ids=lambda b: b.name)
def test_the_kit_reports_it_on_every_run(bug: Bug, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a user sees from ``TestX = lifecycle_test(X).TestCase``: a failing test."""
    apply(bug, monkeypatch)
    case_class = machine_of(bug).TestCase
    case_class.settings = settings(case_class.settings, database=None, derandomize=False)
    suite = unittest.TestSuite(
        case_class(name) for name in ("test_policies", "test_exploration", "test_state_machine")
    )
    result = unittest.TestResult()
    result.failfast = True  # as a user's run stops being green at the first failure
    suite.run(result)
    assert result.failures or result.errors, f"{bug.name}: the kit passed"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bug", [b for b in CATALOGUE if b.name in MACHINE_FINDS], ids=lambda b: b.name)
def test_the_state_machine_alone_finds_it(bug: Bug, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    apply(bug, monkeypatch)
    case = machine_of(bug).TestCase("test_state_machine")
    # default settings, a fresh seed each run; shrinking changes the report, not the finding
    case.settings = settings(case.settings, database=None, derandomize=False, phases=[Phase.generate])
    with pytest.raises(InvariantViolation):
        case.test_state_machine()


@pytest.mark.parametrize("name", ["isolate policy", "optimistic policy"])
def test_bad_policies_fail_the_exhaustive_policy_check(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bug = next(b for b in CATALOGUE if b.name == name)
    with pytest.raises(DefinitionError, match="fails the exhaustive check"):
        bug.target()  # the library itself refuses them, through the same check
    apply(bug, monkeypatch)
    reports = machine_of(bug).check_policies()
    assert [r.ok for r in reports] == [False]
    assert "illegal parent move" in str(reports[0])
    assert isinstance(bug.target().policy, (Isolate, Optimistic))


@pytest.mark.parametrize(
    "bug", [b for b in CATALOGUE if b.mutate and "policy" not in b.name], ids=lambda b: b.name
)
def test_the_correct_library_passes(bug: Bug) -> None:
    """Without the mutant, the same system passes."""
    assert explore(bug.target, arguments=bug.arguments, invariants=bug.invariants).ok
