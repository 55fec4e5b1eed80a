"""The leaf System: configuration, triggers, hooks, failure rules, messages."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statesys
from statesys import (
    DEFAULT_LIFECYCLE,
    ConfigError,
    Context,
    DefinitionError,
    GuardRejected,
    Restart,
    System,
    TransitionNotAllowed,
)


class Recording(System):
    """Records hook calls; main serves until told to finish."""

    fail_prepare: int = 0
    calls: list[str] = attrs.field(factory=list)

    def prepare(self, **kwargs: Any) -> None:
        self.calls.append("prepare")
        if self.fail_prepare:
            self.fail_prepare -= 1
            raise RuntimeError("no GPU")

    async def main(self, ctx: Context) -> None:
        self.calls.append("main")
        while not ctx.stopping:
            await ctx.asleep(3600)

    def shutdown(self) -> None:
        self.calls.append("shutdown")

    def teardown(self) -> None:
        self.calls.append("teardown")


class Sleeper(System):
    seconds: float = 0.01
    fail: str = ""

    def main(self, ctx: Context) -> None:
        ctx.sleep(self.seconds)
        if self.fail:
            raise ValueError(self.fail)


def arun(coro: Any) -> Any:
    return asyncio.run(coro)


# -- configuration -------------------------------------------------------------------------


def test_config_fields_are_validated_and_named() -> None:
    with pytest.raises(ConfigError) as info:
        Sleeper("s", seconds="soon")  # type: ignore[arg-type]
    assert info.value.field == "seconds"
    assert "Sleeper('s').seconds: expected a number (float), got 'soon' (str)" in str(info.value)
    assert isinstance(info.value, TypeError)
    with pytest.raises(ConfigError, match="executor: expected one of"):
        Sleeper("s", executor="gpu")
    with pytest.raises(ConfigError, match="grace"):
        Sleeper("s", grace=-1)
    assert Sleeper(seconds=2).name == "Sleeper"
    assert Sleeper("s", seconds=2).seconds == 2


def test_system_class_definition_is_checked() -> None:
    bare = statesys.Lifecycle(
        ["a", {"name": "z", "final": True}], [{"trigger": "go", "source": "a", "dest": "z"}], initial="a"
    )
    with pytest.raises(
        DefinitionError,
        match=r"triggers the runtime fires are missing: \['activate', 'start', 'complete', 'terminate'\]",
    ):

        class Bad(System, lifecycle=bare):
            pass

    with pytest.raises(DefinitionError, match="hooks must be methods: main = 3"):

        class Bad2(System):
            main = 3  # type: ignore[assignment]


def test_instances_are_slotted_and_small() -> None:
    s = System("x")
    assert not hasattr(s, "__dict__")
    assert not hasattr(Sleeper("y"), "__dict__")


# -- triggers and hooks --------------------------------------------------------------------


def test_lifecycle_through_hooks() -> None:
    async def go() -> None:
        s = Recording("r")
        assert await s.activate(batch=3) == "ready"
        assert await s.start() == "running"
        await asyncio.sleep(0.01)
        assert await s.suspend() == "intermitted"
        assert await s.resume() == "running"
        assert await s.complete() == "completed"
        assert s.calls == ["prepare", "main", "shutdown"]
        assert s.cause is None

    arun(go())


def test_prepare_failure_disables_with_cause_and_enable_retries() -> None:
    async def go() -> None:
        s = Recording("r", fail_prepare=2)
        assert await s.activate() == "disabled"
        assert "RuntimeError: no GPU" in (s.cause or "")
        assert await s.enable() == "disabled"  # fails again: stays, with the new cause
        assert s.cause and "no GPU" in s.cause
        assert await s.enable() == "ready"
        assert s.cause is None
        assert s.calls == ["prepare"] * 3
        assert await s.terminate() == "terminated"
        assert s.calls[-1] == "teardown"

    arun(go())


def test_disable_needs_a_cause() -> None:
    async def go() -> None:
        s = System("s")
        with pytest.raises(TypeError, match="needs a cause"):
            await s.disable("")
        assert await s.disable("maintenance") == "disabled"
        assert s.cause == "maintenance"

    arun(go())


@pytest.mark.parametrize("executor", ["async", "thread"])
def test_main_failure_terminates_with_traceback_and_teardown_once(executor: str) -> None:
    torn: list[int] = []

    class Failing(Sleeper):
        def teardown(self) -> None:
            torn.append(1)

    s = Failing("f", fail="boom", executor=executor)
    assert statesys.run(s) == "terminated"
    assert "ValueError: boom" in (s.cause or "") and "Traceback" in (s.cause or "")
    assert torn == [1]


def test_restart_policy_gives_up_after_its_limit() -> None:
    attempts: list[float] = []

    class Flaky(System):
        async def main(self) -> None:
            attempts.append(time.monotonic())
            raise RuntimeError(f"attempt {len(attempts)}")

    events: list[statesys.Event] = []
    s = Flaky("flaky", restart=Restart(limit=2, within=10, backoff=0.001))
    s.subscribe(events.append)
    assert statesys.run(s) == "terminated"
    assert len(attempts) == 3 and "attempt 3" in (s.cause or "")
    assert "restart 1/2 after" in (events[2].cause or "") and "attempt 1" in (events[2].cause or "")


def test_shutdown_and_teardown_failures_still_close_and_are_recorded() -> None:
    class BadShutdown(System):
        def shutdown(self) -> None:
            raise OSError("disk gone")

    class BadTeardown(System):
        def teardown(self) -> None:
            raise OSError("socket stuck")

    async def go() -> None:
        a = BadShutdown("a")
        await a.activate()
        await a.start()
        assert await a.complete() == "completed"
        assert "OSError: disk gone" in (a.cause or "")
        b = BadTeardown("b")
        assert await b.terminate("stop") == "terminated"
        assert b.cause and b.cause.startswith("stop") and "socket stuck" in b.cause

    arun(go())


def test_terminate_from_every_open_state_runs_teardown_once() -> None:
    async def reach(state: str) -> Recording:
        s = Recording("r")
        path = {
            "initial": [],
            "ready": ["activate"],
            "running": ["activate", "start"],
            "intermitted": ["activate", "start", "suspend"],
            "disabled": [],
        }[state]
        if state == "disabled":
            await s.disable("off")
        for trigger in path:
            await getattr(s, trigger)()
        return s

    async def go() -> None:
        for state in ("initial", "ready", "running", "intermitted", "disabled"):
            s = await reach(state)
            assert s.state == state
            assert await s.terminate() == "terminated"
            assert s.calls.count("teardown") == 1
            with pytest.raises(TransitionNotAllowed):
                await s.terminate()
            assert s.calls.count("teardown") == 1

    arun(go())


def test_thread_main_pauses_at_checkpoints() -> None:
    ticks: list[int] = []
    paused = threading.Event()

    class Counter(System):
        def main(self, ctx: Context) -> None:
            while not ctx.stopping:
                paused.set()
                ctx.checkpoint()
                ticks.append(1)
                time.sleep(0.001)

    async def go() -> None:
        s = Counter("c", executor="thread")
        await s.activate()
        await s.start()
        await asyncio.sleep(0.05)
        await s.suspend()
        await asyncio.sleep(0.02)
        frozen = len(ticks)
        await asyncio.sleep(0.05)
        assert len(ticks) <= frozen + 1  # at most the tick in flight
        await s.resume()
        await asyncio.sleep(0.05)
        assert len(ticks) > frozen + 1
        assert await s.complete() == "completed"

    arun(go())


def test_illegal_trigger_changes_nothing_and_says_what_is_allowed() -> None:
    async def go() -> None:
        s = Recording("r")
        journal: list[statesys.Event] = []
        s.subscribe(journal.append)
        await s.activate()
        before = (s.state, s.cause, list(journal), list(s.calls))
        with pytest.raises(TransitionNotAllowed) as info:
            await s.suspend()
        assert str(info.value) == "r is 'ready'; 'suspend' is not allowed there (allowed: start, terminate)"
        assert (s.state, s.cause, journal, s.calls) == before

    arun(go())


def test_guard_on_a_system_lifecycle() -> None:
    free = {"gpu": False}

    def gpu_free(system: System, **kw: Any) -> bool:
        return free["gpu"]

    guarded = DEFAULT_LIFECYCLE.extend(
        states={"open": ["draining"]},
        transitions=[
            {"trigger": "drain", "source": "running", "dest": "draining"},
            {"trigger": "complete", "source": "draining", "dest": "completed"},
        ],
    ).with_guard("start", conditions=gpu_free)

    class Trainer(System, lifecycle=guarded):
        pass

    async def go() -> None:
        t = Trainer("t")
        events: list[statesys.Event] = []
        t.subscribe(events.append)
        await t.activate()
        with pytest.raises(GuardRejected, match="gpu_free"):
            await t.start()
        assert t.state == "ready" and len(events) == 1
        free["gpu"] = True
        await t.start()
        assert await t.drain() == "draining"  # type: ignore[attr-defined]
        assert set(t.allowed()) == {"complete", "terminate"}
        assert await t.complete() == "completed"

    arun(go())


def test_concurrent_trigger_while_prepare_runs_is_refused() -> None:
    class Slow(System):
        async def prepare(self, **kwargs: Any) -> None:  # type: ignore[override]
            await asyncio.sleep(0.05)

    async def go() -> None:
        s = Slow("s")
        task = asyncio.ensure_future(s.activate())
        await asyncio.sleep(0.01)
        with pytest.raises(TransitionNotAllowed, match="'activate' is in progress"):
            await s.activate()
        assert await task == "ready"

    arun(go())


def test_terminate_during_prepare_wins() -> None:
    class Slow(System):
        async def prepare(self, **kwargs: Any) -> None:  # type: ignore[override]
            await asyncio.sleep(0.05)

    async def go() -> None:
        s = Slow("s")
        task = asyncio.ensure_future(s.activate())
        await asyncio.sleep(0.01)
        assert await s.terminate() == "terminated"
        assert await task == "terminated"

    arun(go())


def test_main_that_returns_while_suspended_completes_on_resume() -> None:
    class Quick(System):
        async def main(self) -> None:
            await asyncio.sleep(0.02)  # never checkpoints

    async def go() -> None:
        s = Quick("q")
        await s.activate()
        await s.start()
        await s.suspend()
        await asyncio.sleep(0.05)
        assert s.state == "intermitted"
        await s.resume()
        assert await s.wait_closed() == "completed"

    arun(go())


# -- property: random trigger sequences ------------------------------------------------------

STEPS = st.lists(st.sampled_from(DEFAULT_LIFECYCLE.triggers), max_size=14)


@settings(max_examples=150, deadline=None)
@given(STEPS)
def test_random_trigger_sequences_follow_the_table(steps: list[str]) -> None:
    async def go() -> None:
        s = Recording("r")
        journal: list[statesys.Event] = []
        s.subscribe(journal.append)
        for trigger in steps:
            state, cause, n_events = s.state, s.cause, len(journal)
            route = DEFAULT_LIFECYCLE.route(state, trigger)
            args = ("why",) if trigger == "disable" else ()
            if route is None:
                with pytest.raises(TransitionNotAllowed):
                    await getattr(s, trigger)(*args)
                assert (s.state, s.cause, len(journal)) == (state, cause, n_events)
                continue
            assert await getattr(s, trigger)(*args) == route.dest
            await asyncio.sleep(0)
            assert [e.dest for e in journal[n_events:]] == [route.dest]
        # hooks: prepare once and before any main; teardown at most once; nothing after closing
        assert s.calls.count("prepare") <= 1 and s.calls.count("teardown") <= 1
        if "main" in s.calls:
            assert s.calls.index("prepare") < s.calls.index("main")
        closing = [i for i, c in enumerate(s.calls) if c in ("shutdown", "teardown")]
        assert len(closing) <= 1 and (not closing or closing[0] == len(s.calls) - 1)
        assert [e.source for e in journal[1:]] == [e.dest for e in journal[:-1]]
        if s.state == "running":
            await s.terminate()

    asyncio.run(go())


def test_run_from_sync_code_and_paths() -> None:
    app = System("app", subsystems=[Sleeper("a"), Sleeper("b", seconds=0.02)])
    assert statesys.run(app) == "completed"
    assert app["a"].path == "app/a" and app["b"].parent is app
    with pytest.raises(KeyError, match="app has no subsystem 'zz'"):
        app["zz"]


@pytest.mark.parametrize("executor", ["async", "thread"])
def test_hanging_teardown_and_shutdown_are_cut_off_and_recorded(executor: str) -> None:
    release = threading.Event()

    class Stuck(System):
        def shutdown(self) -> None:
            release.wait(5)

        def teardown(self) -> None:
            release.wait(5)

    class StuckAsync(System):
        async def shutdown(self) -> None:  # type: ignore[override]
            await asyncio.sleep(5)

        async def teardown(self) -> None:  # type: ignore[override]
            await asyncio.sleep(5)

    cls = Stuck if executor == "thread" else StuckAsync

    async def go() -> None:
        a = cls("a", grace=0.05, executor=executor)
        assert await a.terminate() == "terminated"
        assert "teardown() did not finish within 0.05s; cut off" in (a.cause or "")
        b = cls("b", grace=0.05, executor=executor)
        await b.activate()
        await b.start()
        assert await b.complete() == "completed"
        assert "shutdown() did not finish within 0.05s" in (b.cause or "")
        release.set()  # let the abandoned threads end before the loop closes

    try:
        arun(go())
    finally:
        release.set()
