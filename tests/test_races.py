"""Triggers racing the runtime's own phases: nothing hangs, overlaps, or moves illegally."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import statesys
from statesys import Context, Event, Restart, System, TransitionNotAllowed


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


class Serve(System):
    async def main(self, ctx: Context) -> None:
        while not ctx.stopping:
            await ctx.asleep(10)


class Fail(System):
    async def main(self) -> None:
        await asyncio.sleep(0.02)
        raise RuntimeError("boom")


def test_resume_during_restart_backoff_is_refused_and_the_restart_happens() -> None:
    class Flaky(System):
        runs: int = 0

        async def main(self, ctx: Context) -> None:
            self.runs += 1
            if self.runs == 1:
                raise RuntimeError("first run fails")
            await ctx.asleep(10)

    async def go() -> None:
        s = Flaky("s", restart=Restart(limit=2, backoff=0.1))
        await s.activate()
        await s.start()
        await asyncio.sleep(0.03)
        assert s.state == "intermitted"
        with pytest.raises(TransitionNotAllowed, match="'restart' is in progress"):
            await s.resume()
        await asyncio.sleep(0.15)
        assert s.state == "running" and s.runs == 2
        assert await s.complete() == "completed"

    run(go())


def test_main_failing_while_suspended_by_its_user_restarts_only_on_resume() -> None:
    gate = threading.Event()

    class S(System):
        runs: int = 0

        def main(self, ctx: Context) -> None:
            self.runs += 1
            if self.runs == 1:
                gate.wait(5)
                raise RuntimeError("boom while suspended")
            while not ctx.stopping:
                ctx.sleep(10)

    async def go() -> None:
        s = S("s", restart=Restart(limit=2, backoff=0.01), executor="thread")
        events: list[Event] = []
        s.subscribe(events.append)
        await s.activate()
        await s.start()
        await s.suspend()
        gate.set()
        await asyncio.sleep(0.1)
        assert s.state == "intermitted" and s.runs == 1
        assert "boom while suspended" in (s.cause or "")
        await s.resume()
        await asyncio.sleep(0.05)
        assert s.runs == 2
        assert await s.complete() == "completed"
        assert [e.trigger for e in events] == ["activate", "start", "suspend", "resume", "complete"]

    run(go())


def test_terminate_waits_for_a_running_prepare_and_shutdown_before_teardown() -> None:
    log: list[str] = []

    class S(System):
        def prepare(self, **kw: Any) -> None:
            log.append("prepare start")
            time.sleep(0.1)
            log.append("prepare end")

        def shutdown(self) -> None:
            log.append("shutdown start")
            time.sleep(0.1)
            log.append("shutdown end")

        def teardown(self) -> None:
            log.append("teardown")

    async def go() -> None:
        s = S("s", executor="thread")
        activating = asyncio.ensure_future(s.activate())
        await asyncio.sleep(0.02)
        assert await s.terminate() == "terminated"
        assert await activating == "terminated"
        assert log == ["prepare start", "prepare end", "teardown"]
        log.clear()
        s = S("s2", executor="thread")
        await s.activate()
        await s.start()
        completing = asyncio.ensure_future(s.complete())
        await asyncio.sleep(0.02)
        with pytest.raises(TransitionNotAllowed, match="'complete' is in progress"):
            await s.suspend()
        assert await completing == "completed"
        assert log == ["prepare start", "prepare end", "shutdown start", "shutdown end"]

    run(go())


def test_complete_while_shutdown_runs_waits_for_it() -> None:
    class S(System):
        async def main(self) -> None:
            await asyncio.sleep(0.02)

        async def shutdown(self) -> None:  # type: ignore[override]
            await asyncio.sleep(0.1)

    async def go() -> None:
        s = S("s")
        await s.activate()
        await s.start()
        await asyncio.sleep(0.05)
        assert await s.complete() == "completed"

    run(go())


def test_abandoned_thread_main_does_not_hang_run() -> None:
    stop = threading.Event()

    class Stubborn(System):
        def main(self) -> None:
            while not stop.wait(0.01):
                pass

    async def go() -> None:
        s = Stubborn("s", grace=0.05, executor="thread")
        running = asyncio.ensure_future(s.run())
        await asyncio.sleep(0.02)
        assert await s.terminate() == "terminated"
        assert "abandoned" in (s.cause or "")
        assert await running == "terminated"
        stop.set()

    run(go())


def test_nested_fail_fast_tears_the_parent_down_after_its_whole_subtree() -> None:
    log: list[str] = []

    class SlowStop(Serve):
        async def teardown(self) -> None:  # type: ignore[override]
            log.append("b teardown start")
            await asyncio.sleep(0.1)
            log.append("b teardown end")

    class App(System):
        def teardown(self) -> None:
            log.append("app teardown")

    app = App("app", subsystems=[System("mid", subsystems=[SlowStop("b"), Fail("a")]), Serve("c")])
    assert statesys.run(app) == "terminated"
    assert log == ["b teardown start", "b teardown end", "app teardown"]
    assert all(s.closed for s in app.walk())


def test_a_guard_refusing_deep_in_a_cascade_changes_nothing() -> None:
    def never(system: System, **kw: Any) -> bool:
        return False

    guarded = statesys.DEFAULT_LIFECYCLE.with_guard("activate", conditions=never)

    class Guarded(System, lifecycle=guarded):
        pass

    prepared: list[str] = []

    class Plain(System):
        def prepare(self, **kw: Any) -> None:
            prepared.append(self.name)

    async def go() -> None:
        app = System("app", subsystems=[Plain("a"), System("mid", subsystems=[Guarded("g")])])
        with pytest.raises(statesys.GuardRejected, match="never"):
            await app.activate()
        assert [s.state for s in app.walk()] == ["initial"] * 4 and prepared == []

    run(go())


def test_add_is_refused_while_a_cascade_or_termination_runs() -> None:
    class SlowPrepare(System):
        async def prepare(self, **kw: Any) -> None:  # type: ignore[override]
            await asyncio.sleep(0.05)

    async def go() -> None:
        app = System("app", subsystems=[SlowPrepare("a")])
        activating = asyncio.ensure_future(app.activate())
        await asyncio.sleep(0.01)
        with pytest.raises(TransitionNotAllowed, match="'activate' is in progress"):
            await app.add(System("late"))
        await activating
        await app.start()
        terminating = asyncio.ensure_future(app.terminate())
        await asyncio.sleep(0)
        with pytest.raises(TransitionNotAllowed, match="takes no new subsystems"):
            await app.add(System("later"))
        assert await terminating == "terminated"
        assert [s.name for s in app.subsystems] == ["a"]

    run(go())


def test_errors_in_runtime_tasks_surface_from_run() -> None:
    def boom(system: System, **kw: Any) -> None:
        raise RuntimeError("after-callback failed")

    lifecycle = statesys.DEFAULT_LIFECYCLE.extend(name="boom")
    states, transitions = lifecycle.declaration()
    for t in transitions:
        if t["trigger"] == "complete":
            t["after"] = [boom]
    failing = statesys.Lifecycle(states, transitions, name="boom")

    class S(System, lifecycle=failing):
        async def main(self) -> None:
            await asyncio.sleep(0.01)

    with pytest.raises(RuntimeError, match="after-callback failed"):
        statesys.run(S("s"))


def test_run_terminates_a_tree_that_cannot_start() -> None:
    torn: list[str] = []

    class Ok(System):
        def teardown(self) -> None:
            torn.append(self.name)

    class Bad(System):
        def prepare(self, **kw: Any) -> None:
            raise RuntimeError("no config")

    app = System("app", subsystems=[Ok("ok"), Bad("bad")])
    assert statesys.run(app) == "terminated"
    assert torn == ["ok"]
    assert "app/bad is disabled: RuntimeError: no config" in (app["ok"].cause or "")
