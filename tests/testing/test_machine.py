"""Ready state machines: they pass on correct systems, trees and guarded lifecycles, and they
are extended by decorators and subclasses."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from statesys import Restart, System
from statesys.testing import InvariantViolation, Step, SystemMachine, lifecycle_test

from . import OUTCOME, PROBE_ARGUMENTS, Gpu, Probe, gpu_farm, gpu_running_needs_gpu

# The one-liners a user writes: each runs the state machine, the explorer and the policy check.
TestDefaultSystem = lifecycle_test(System).TestCase
TestProbe = lifecycle_test(Probe, arguments=PROBE_ARGUMENTS).TestCase

GpuFarm = lifecycle_test(gpu_farm, arguments={"activate": [{}, {"fail": True}]})
GpuFarm.invariant(gpu_running_needs_gpu)
TestGpuFarm = GpuFarm.TestCase


def restarting_tree() -> System:
    """Two levels, a restart policy and mains the test ends: interleavings for the machine."""
    return System(
        "app",
        subsystems=[
            System(
                "pair", subsystems=[Probe("a"), Probe("b", restart=Restart(limit=1, within=60, backoff=0))]
            ),
            Probe("c"),
        ],
    )


# Five systems: the explorer's space grows with the product of their states, so this
# tree is explored only 3 triggers deep; the state machine goes further.
class TreeMachine(lifecycle_test(restarting_tree, arguments=PROBE_ARGUMENTS, max_depth=3)):  # type: ignore[misc]
    """A user's extension: a rule that makes a running main finish or fail."""

    @rule(i=st.integers(0, 100), outcome=st.sampled_from(["finish", "fail"]))
    def main_ends(self, i: int, outcome: str) -> None:
        running = [n for n in self.harness.nodes.values() if n._main is not None and not n._main.done()]
        if not running:
            return
        node = running[i % len(running)]
        OUTCOME[node.path] = outcome

        async def wake() -> None:
            assert node._runner is not None
            node._runner.request_stop()  # wakes the main, which reads its outcome

        self.act(wake(), f"{node.path}'s main is told to {outcome}")

    @invariant()
    def closed_parents_have_closed_children(self) -> None:
        for node in self.system.walk():
            if node.closed and node.policy.terminates_siblings:
                assert all(c.closed for c in node.subsystems), node.path


TestTree = TreeMachine.TestCase
TestTree.settings = settings(TreeMachine.test_settings, max_examples=50)


def test_rules_are_named_after_triggers_and_systems() -> None:
    names = {r.function.__name__ for r in GpuFarm.setup_state().rules}
    assert {"activate", "start", "disable", "start_big", "terminate_small", "illegal_trigger"} <= names
    single = {r.function.__name__ for r in lifecycle_test(Probe).setup_state().rules}
    assert single == {*Probe.lifecycle.triggers, "illegal_trigger"}


def test_the_default_settings_fit_the_size_of_the_tree() -> None:
    assert lifecycle_test(Probe).test_settings.stateful_step_count == 20
    assert GpuFarm.test_settings.stateful_step_count == 40
    assert lifecycle_test(Probe).test_settings.deadline is None


def test_the_explorer_and_policy_check_of_a_machine() -> None:
    report = GpuFarm.explore()
    assert report.ok and report.complete
    assert [r.ok for r in GpuFarm.check_policies()] == [True]


def test_a_failing_user_invariant_gets_the_replay_script() -> None:
    class Strict(lifecycle_test(Probe)):  # type: ignore[misc]
        @invariant()
        def never_running(self) -> None:
            assert self.system.state != "running", "it runs"

    with pytest.raises(AssertionError, match="it runs") as info:
        run_state_machine_as_test(
            Strict, settings=settings(Strict.test_settings, database=None, phases=[Phase.generate])
        )
    script = getattr(info.value, "statesys_script", "")
    assert "await system.start()" in script
    assert any(script in note for note in getattr(info.value, "__notes__", ()))


def test_a_registered_invariant_fails_the_machine_with_its_steps() -> None:
    machine = lifecycle_test(Probe)

    @machine.invariant
    def never_intermitted(system: System) -> None:
        assert system.state != "intermitted"

    with pytest.raises(InvariantViolation, match="never_intermitted") as info:
        run_state_machine_as_test(machine, settings=settings(machine.test_settings, database=None))
    assert [s.trigger for s in info.value.steps][-1] == "suspend"
    assert not machine.explore().ok


def test_subclass_invariants_do_not_leak_into_the_parent_class() -> None:
    base = lifecycle_test(Probe)
    child: type[SystemMachine] = type("Child", (base,), {})
    child.invariant(lambda system: True)
    assert base.user_invariants == ()
    assert len(child.user_invariants) == 1


def test_definitions_are_checked_when_made() -> None:
    with pytest.raises(InvalidArgument, match="drain"):
        lifecycle_test(Probe, arguments={"drain": [{}]})
    with pytest.raises(InvalidArgument, match=r"must build a statesys\.System"):
        lifecycle_test(lambda: None)  # type: ignore[arg-type,return-value]


def test_a_guarded_leaf_passes() -> None:
    machine = lifecycle_test(
        Gpu, arguments={"activate": [{}, {"fail": True}]}, invariants=[gpu_running_needs_gpu]
    )
    run_state_machine_as_test(
        machine,
        settings=settings(machine.test_settings, database=None, suppress_health_check=[HealthCheck.too_slow]),
    )
    assert issubclass(machine, SystemMachine)


def test_actions_of_user_rules_appear_in_the_replay_script() -> None:
    machine = TreeMachine()
    try:
        machine.fire(Step("activate"))
        machine.fire(Step("start"))
        machine.main_ends(0, "finish")
        script = machine.harness.script()
        assert "    # app/pair/a's main is told to finish" in script
        assert script.index("await system.start()") < script.index("told to finish")
        assert machine.harness.nodes["pair/a"].state == "completed"
    finally:
        machine.teardown()
