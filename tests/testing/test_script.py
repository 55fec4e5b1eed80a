"""Steps, the checked harness, settling, and replay scripts that reproduce a failure."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from statesys import System
from statesys.testing import Harness, InvariantViolation, Step, check_steps, explore, settle
from statesys.testing._script import render_script

from . import SIX, Gpu, Parked, Probe, gpu_farm, tree

ROOT = Path(__file__).resolve().parents[2]


def test_steps_render_as_calls() -> None:
    assert Step("disable", {"cause": "maintenance"}).call() == "await system.disable('maintenance')"
    assert Step("terminate", {"cause": "x"}, "a/b").call() == "await system['a/b'].terminate('x')"
    assert Step("activate", {"gpus": 0}).call("app") == "await app.activate(gpus=0)"
    assert str(Step("start", path="a")) == "a.start()"
    assert repr(Step("start", path="a", illegal=True)) == "Step('start', path='a', illegal=True)"
    assert repr(Step("activate", {"fail": True})) == "Step('activate', {'fail': True})"
    assert Step("start") == Step("start", {})


def test_a_script_is_valid_python_that_wraps_refusals() -> None:
    steps = [Step("activate"), Step("resume", illegal=True), Step("start", path="a")]
    script = render_script(tree, steps, failure="boom\nmore")
    compile(script, "<script>", "exec")
    assert "from tests.testing import tree" in script
    assert "    system = tree()" in script
    assert "with contextlib.suppress(statesys.TransitionNotAllowed):  # refused" in script
    assert "await system['a'].start()  # fails here: boom" in script
    local = render_script(lambda: System(), steps)
    assert "build the tree as" in local


def test_the_printed_script_replays_the_failure() -> None:
    report = explore(Parked)
    assert report.counterexample is not None
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", report.counterexample.script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert done.returncode != 0
    assert "RuntimeError: stale lease" in done.stderr


def test_settle_waits_for_fail_fast_terminations() -> None:
    async def scenario() -> list[str]:
        app = tree()
        await app.activate()
        await app.start()
        await app["a"].terminate("gone")
        await settle(app)
        return [n.state for n in app.walk()]

    assert asyncio.run(scenario()) == ["terminated"] * 3


def test_the_harness_checks_refusals_and_records_hooks() -> None:
    with Harness(Probe) as harness:
        assert not harness.fire(Step("start"))  # refused: nothing changes
        assert harness.fire(Step("activate", {"fail": True}))
        assert harness.root.state == "disabled"
        assert harness.fire(Step("enable"))
        assert harness.fire(Step("start"))
        record = harness.observer.records[""]
        assert (record.prepared, record.main) == (1, 1)
        assert harness.refused == [True, False, False, False]
    assert harness.loop.is_closed()
    assert harness.root.state == "terminated"  # closed by the harness


def test_a_guard_refusal_is_legal_and_a_bypass_is_not() -> None:
    with Harness(lambda: Gpu(gpus=0)) as harness:
        harness.fire(Step("activate"))
        assert not harness.fire(Step("start"))  # GuardRejected: nothing changed
        assert harness.refused[-1]
    with Harness(gpu_farm) as harness:
        harness.fire(Step("activate"))
        assert not harness.fire(Step("start"))  # "small" refuses: the parent does not start
        assert harness.refused[-1]
        assert harness.root.state == "ready" and harness.nodes["small"].state == "ready"


def test_violations_carry_the_steps_and_a_script() -> None:
    steps = [Step(t, {"cause": "x"} if t == "disable" else {}) for t in SIX]
    with pytest.raises(InvariantViolation) as info:
        check_steps(Parked, steps)
    exc = info.value
    assert exc.steps == tuple(steps)
    assert "resume() raised RuntimeError" in exc.message
    assert "replay:" in str(exc) and exc.script in str(exc)
    exc.statesys_show_script = False
    assert exc.script not in str(exc)


def test_user_invariants_run_after_every_step() -> None:
    seen: list[str] = []

    def watch(root: System) -> bool:
        seen.append(root.state)
        return root.state != "running"

    with pytest.raises(InvariantViolation, match="invariant watch returned False"):
        check_steps(Probe, [Step("activate"), Step("start")], invariants=[watch])
    assert seen == ["initial", "ready", "running"]


def test_a_step_naming_no_system_is_a_usage_error() -> None:
    with pytest.raises(KeyError, match="names no system"):
        check_steps(tree, [Step("start", path="nobody")])


def test_a_target_that_builds_no_system_is_refused() -> None:
    with pytest.raises(TypeError, match=r"must build a statesys\.System"):
        Harness(lambda: "app")  # type: ignore[arg-type,return-value]


class Sleeper(System):
    """A thread main, the slowest to settle: the harness must still see everything."""

    def prepare(self, **kwargs: object) -> None:
        pass

    def main(self, ctx: object) -> None:
        ctx.sleep(3600)  # type: ignore[attr-defined]

    def teardown(self) -> None:
        pass


def test_thread_mains_settle() -> None:
    steps = [Step(t) for t in ("activate", "start", "suspend", "resume", "complete")]
    check_steps(lambda: Sleeper(executor="thread"), steps)
    check_steps(lambda: Sleeper(executor="thread"), [*steps[:3], Step("terminate", {"cause": "x"})])
