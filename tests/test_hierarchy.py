"""Systems of systems: composition, cascades, derivation, observation."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
import pytest

import statesys
from statesys import FAIL_FAST, Context, DefinitionError, Event, System, TransitionNotAllowed
from statesys.testing._policy import check_policy

from .strategies import ARTICLE_ORDER
from .test_system import Recording, Sleeper


@attrs.frozen
class Isolate:
    """The naive policy: ignore terminated children while others are open."""

    terminates_siblings: bool = False

    def derive(self, counts: Any, total: int) -> str:
        live = {k: v for k, v in counts.items() if k != "terminated"}
        n = total - counts.get("terminated", 0)
        return "terminated" if n == 0 else FAIL_FAST.derive(live, n)


# -- derivation: exhaustive ------------------------------------------------------------------


def test_fail_fast_passes_the_exhaustive_check_up_to_four_children_and_own_part() -> None:
    report = check_policy(FAIL_FAST, max_children=5)  # 4 children + the parent's own part
    assert report.ok, str(report)
    assert report.configurations > 700


def test_isolate_policy_fails_the_exhaustive_check_with_a_trace() -> None:
    report = check_policy(Isolate(), max_children=4)
    assert not report.ok
    assert "illegal parent move" in (report.violation or "")
    assert any("terminate" in step for step in report.trace)


def test_design_example_disabled_then_running_is_illegal_under_isolate() -> None:
    counts = {"disabled": 1, "running": 1}
    assert Isolate().derive(counts, 2) == "disabled"
    assert Isolate().derive({"terminated": 1, "running": 1}, 2) == "running"
    assert statesys.DEFAULT_LIFECYCLE.trigger_between("disabled", "running") is None


# -- composition -----------------------------------------------------------------------------


def test_names_unique_one_parent_and_after_checked() -> None:
    with pytest.raises(DefinitionError, match=r"unique among siblings: \['a'\]"):
        System("app", subsystems=[System("a"), System("a")])
    a = System("a")
    System("p1", subsystems=[a])
    with pytest.raises(DefinitionError, match="'a' already belongs to 'p1'"):
        System("p2", subsystems=[a])
    with pytest.raises(DefinitionError, match="form a cycle among"):
        System("app", subsystems=[System("x", after="y"), System("y", after="x")])
    with pytest.raises(DefinitionError, match="starts after unknown siblings"):
        System("app", subsystems=[System("x", after="nobody")])


def test_paths_and_walk() -> None:
    app = System("app", subsystems=[System("trainer", subsystems=[System("loader")])])
    assert app["trainer/loader"].path == "app/trainer/loader"
    assert [s.path for s in app.walk()] == ["app", "app/trainer", "app/trainer/loader"]


# -- cascades --------------------------------------------------------------------------------


def test_parent_running_only_after_all_children_and_completed_after_all() -> None:
    """The source design: appSystem with sleepSystem1 (5 s) and sleepSystem2 (3 s), scaled down."""
    app = System(
        "appSystem", subsystems=[Sleeper("sleepSystem1", seconds=0.10), Sleeper("sleepSystem2", seconds=0.06)]
    )
    events: list[Event] = []
    app.subscribe(events.append)
    assert statesys.run(app) == "completed"
    order = [(e.name, e.dest) for e in events]
    assert order == ARTICLE_ORDER


def test_start_after_and_terminate_in_reverse_start_order() -> None:
    async def go() -> None:
        app = System(
            "app",
            subsystems=[
                System("web", after=["hub", "loader"]),
                System("hub", after="loader"),
                System("loader"),
            ],
        )
        events: list[Event] = []
        app.subscribe(events.append)
        await app.activate()
        await app.start()
        assert [e.name for e in events if e.dest == "running"] == ["loader", "hub", "web", "app"]
        events.clear()
        assert await app.terminate("shutdown") == "terminated"
        assert [e.name for e in events] == ["web", "app", "hub", "loader"]
        assert all(s.state == "terminated" for s in app.walk())

    asyncio.run(go())


def test_suspend_resume_cascade_only_to_running_and_intermitted_children() -> None:
    async def go() -> None:
        app = System("app", subsystems=[Recording("a"), Recording("b"), System("c")])
        await app.activate()
        await app.start()
        await app["a"].suspend()
        assert app.state == "running"  # not every open child is intermitted
        assert await app.suspend() == "intermitted"
        assert {s.state for s in app.subsystems} == {"intermitted"}
        assert await app.resume() == "running"
        await app["c"].complete()
        assert await app.complete() == "completed"
        assert [s.state for s in app.subsystems] == ["completed"] * 3

    asyncio.run(go())


def test_fail_fast_terminates_open_siblings_with_cause() -> None:
    app = System("app", subsystems=[Sleeper("slow", seconds=30), Sleeper("bad", fail="exploded")])
    assert statesys.run(app) == "terminated"
    assert app["slow"].state == "terminated"
    assert "fail-fast" in (app["slow"].cause or "")
    assert "app/bad terminated" in (app.cause or "") and "exploded" in (app.cause or "")


def test_disable_and_enable_cascade_and_parent_prepare_counts_as_own_part() -> None:
    class Parent(System):
        fail: bool = True

        def prepare(self, **kwargs: Any) -> None:
            if self.fail:
                self.fail = False
                raise RuntimeError("config missing")

    async def go() -> None:
        app = Parent("app", subsystems=[System("a"), System("b")])
        assert await app.activate() == "disabled"
        assert [s.state for s in app.subsystems] == ["ready", "ready"]
        assert "config missing" in (app.cause or "")
        assert await app.enable() == "ready"
        other = System("other", subsystems=[System("x"), System("y")])
        assert await other.disable("maintenance") == "disabled"
        assert [s.state for s in other.subsystems] == ["disabled", "disabled"]
        assert await other.enable() == "ready"

    asyncio.run(go())


def test_parent_own_main_counts_as_one_more_child() -> None:
    class Coordinator(System):
        async def main(self, ctx: Context) -> None:
            await ctx.asleep(0.08)

    app = Coordinator("app", subsystems=[Sleeper("a", seconds=0.01)])
    events: list[Event] = []
    app.subscribe(events.append)
    assert statesys.run(app) == "completed"
    a_done = next(i for i, e in enumerate(events) if e.name == "a" and e.dest == "completed")
    app_done = next(i for i, e in enumerate(events) if e.name == "app" and e.dest == "completed")
    assert a_done < app_done and events[app_done].time - events[a_done].time > 0.03


def test_child_commanded_on_its_own_and_parent_follows() -> None:
    async def go() -> None:
        app = System("app", subsystems=[System("a"), System("b")])
        await app["a"].activate()
        assert app.state == "initial"
        await app["b"].activate()
        assert app.state == "initial"  # its own part is not prepared yet
        await app.activate()
        assert app.state == "ready"
        with pytest.raises(TransitionNotAllowed, match="'complete' is not allowed"):
            await app.complete()

    asyncio.run(go())


@pytest.mark.parametrize("parent_state", ["initial", "ready", "running", "intermitted"])
def test_add_child_brings_it_up_before_it_counts(parent_state: str) -> None:
    async def go() -> None:
        app = System("app", subsystems=[System("a")])
        events: list[Event] = []
        app.subscribe(events.append)
        for trigger in {
            "initial": [],
            "ready": ["activate"],
            "running": ["activate", "start"],
            "intermitted": ["activate", "start", "suspend"],
        }[parent_state]:
            await getattr(app, trigger)()
        before = app.state
        added = await app.add(Recording("late"))
        assert app.state == before == parent_state
        assert added.state == parent_state and added.path == "app/late"
        assert all(not (e.name == "app" and e.source == before and e.dest != before) for e in events[-4:])
        assert statesys.replay(_journal_of(events)).ok

    asyncio.run(go())


def test_add_refuses_bad_children_and_closed_parents() -> None:
    async def go() -> None:
        app = System("app", subsystems=[System("a")])
        with pytest.raises(DefinitionError, match="unique"):
            await app.add(System("a"))
        await app.activate()
        await app.start()
        bad = Recording("bad", fail_prepare=1)
        with pytest.raises(statesys.StatesysError, match="could not be brought up"):
            await app.add(bad)
        assert bad.state == "terminated" and bad.parent is None and app.state == "running"
        await app.terminate()
        with pytest.raises(TransitionNotAllowed, match="takes no new subsystems"):
            await app.add(System("z"))

    asyncio.run(go())


def _journal_of(events: list[Event]) -> Any:
    import io
    import json

    return io.StringIO("".join(json.dumps(e.as_json()) + "\n" for e in events))


def test_events_async_iterator_sees_the_whole_tree_in_order() -> None:
    async def go() -> list[str]:
        app = System("app", subsystems=[Sleeper("a", seconds=0.01), Sleeper("b", seconds=0.02)])
        seen: list[str] = []

        async def watch() -> None:
            async for event in app.events():
                seen.append(f"{event.path}:{event.dest}")

        watcher = asyncio.ensure_future(watch())
        await asyncio.sleep(0)
        await app.run()
        await asyncio.wait_for(watcher, 1)
        return seen

    seen = asyncio.run(go())
    assert seen[-1] == "app:completed" and len(seen) == 9


def test_a_policy_that_fails_the_exhaustive_check_is_refused_at_construction() -> None:
    with pytest.raises(DefinitionError, match="fails the exhaustive check: illegal parent move"):
        System("app", subsystems=[System("a")], policy=Isolate())
    with pytest.raises(DefinitionError, match="expected a derivation policy"):
        System("app", subsystems=[System("a")], policy="fail-fast")  # type: ignore[arg-type]
    # a correct custom policy is accepted (checked once, then cached)
    app = System("app", subsystems=[System("a")], policy=statesys.FailFast())
    assert app.state == "initial"


def test_restart_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="max_backoff"):
        statesys.Restart(backoff=2.0, max_backoff=1.0)


def test_children_suspended_one_by_one_make_the_parent_intermitted() -> None:
    async def go() -> None:
        app = System("app", subsystems=[Recording("a"), Recording("b"), System("done")])
        await app.activate()
        await app.start()
        await app["done"].complete()
        await app["a"].suspend()
        assert app.state == "running"
        await app["b"].suspend()
        assert app.state == "intermitted"  # every open child is intermitted (rule 6)
        await app["a"].resume()
        assert app.state == "running"
        await app["b"].resume()
        assert await app.complete() == "completed"

    asyncio.run(go())
