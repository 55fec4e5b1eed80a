"""Random trees, random commands, random main completions and failures: DESIGN §4 invariants."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import statesys
from statesys import DEFAULT_LIFECYCLE, Event, Journal, Restart, System, TransitionNotAllowed
from tests.testing import OUTCOME, Controlled


def shapes(depth: int) -> st.SearchStrategy[Any]:
    leaf = st.tuples(st.just("leaf"), st.booleans())  # (kind, restarts?)
    if depth == 0:
        return leaf
    return st.one_of(leaf, st.lists(shapes(depth - 1), min_size=1, max_size=4))


def build(shape: Any, name: str) -> System:
    if isinstance(shape, list):
        return System(name, subsystems=[build(s, f"{name}{i}") for i, s in enumerate(shape)])
    _, restarts = shape
    return Controlled(
        name, restart=Restart(limit=1, within=60, backoff=0) if restarts else None, executor="async"
    )


TRIGGERS = DEFAULT_LIFECYCLE.triggers


class TreeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.violations: list[str] = []
        self.last: dict[str, str] = {}
        self.observed: list[Event] = []
        self.journal = io.StringIO()

    @initialize(shape=st.lists(shapes(2), min_size=1, max_size=4))
    def make_tree(self, shape: list[Any]) -> None:
        OUTCOME.clear()
        self.root = System("t", subsystems=[build(s, f"n{i}") for i, s in enumerate(shape)])
        self.nodes = list(self.root.walk())
        self.root.subscribe(self.check_event)
        self.root.subscribe(Journal(self.journal))

    def check_event(self, event: Event) -> None:
        self.observed.append(event)
        before = self.last.get(event.path, DEFAULT_LIFECYCLE.initial)
        if event.source != before:
            self.violations.append(f"{event.path}: event from {event.source} but it was {before}")
        route = DEFAULT_LIFECYCLE.route(event.source, event.trigger)
        if route is None or route.dest != event.dest:
            self.violations.append(
                f"{event.path}: illegal move {event.source} --{event.trigger}--> {event.dest}"
            )
        self.last[event.path] = event.dest

    def settle(self) -> None:
        async def quiet() -> None:
            stable = 0
            while stable < 20:
                n = len(self.observed)
                await asyncio.sleep(0)
                stable = stable + 1 if len(self.observed) == n else 0

        self.loop.run_until_complete(quiet())

    def snapshot(self) -> list[tuple[str, str | None]]:
        return [(n.state, n.cause) for n in self.nodes]

    @rule(i=st.integers(0, 10_000), trigger=st.sampled_from(TRIGGERS))
    def any_command(self, i: int, trigger: str) -> None:
        self.command(self.nodes[i % len(self.nodes)], trigger)

    @rule(i=st.integers(0, 10_000), j=st.integers(0, 10))
    def legal_command(self, i: int, j: int) -> None:
        """Mostly moves forward: a trigger the node allows now, terminate aside."""
        open_nodes = [n for n in self.nodes if not n.closed]
        if not open_nodes:
            return
        node = open_nodes[i % len(open_nodes)]
        choices = [t for t in node.allowed() if t != "terminate"] or ["terminate"]
        self.command(node, choices[j % len(choices)])

    def command(self, node: System, trigger: str) -> None:
        before, n_events = self.snapshot(), len(self.observed)
        args = ("ops said so",) if trigger == "disable" else ()
        try:
            self.loop.run_until_complete(getattr(node, trigger)(*args))
        except TransitionNotAllowed:
            assert self.snapshot() == before and len(self.observed) == n_events, (
                "a refused trigger changed something"
            )
        self.settle()

    @rule(i=st.integers(0, 10_000), outcome=st.sampled_from(["finish", "fail"]))
    def main_ends(self, i: int, outcome: str) -> None:
        leaves = [
            n for n in self.nodes if isinstance(n, Controlled) and n._main is not None and not n._main.done()
        ]
        if not leaves:
            return
        leaf = leaves[i % len(leaves)]
        OUTCOME[leaf.path] = outcome
        assert leaf._runner is not None
        leaf._runner.request_stop()  # wakes the main so that it reads its outcome
        self.settle()

    @invariant()
    def parents_equal_the_rule(self) -> None:
        for node in self.nodes:
            if not node.subsystems:
                continue
            counts: dict[str, int] = {}
            for child in node.subsystems:
                counts[child.state] = counts.get(child.state, 0) + 1
            counts[node._own] = counts.get(node._own, 0) + 1
            assert {k: v for k, v in (node._counts or {}).items() if v} == counts
            assert node.state == node.policy.derive(counts, len(node.subsystems) + 1), node.path

    @invariant()
    def every_change_legal_and_journal_complete(self) -> None:
        assert not self.violations, self.violations
        for node in self.nodes:
            assert self.last.get(node.path, "initial") == node.state, node.path
        report = statesys.replay(io.StringIO(self.journal.getvalue()))
        assert report.ok, str(report)
        assert report.events == len(self.observed)

    def teardown(self) -> None:
        root = getattr(self, "root", None)
        if root is not None and not root.closed:
            self.loop.run_until_complete(root.terminate("test over"))
        if root is not None:
            self.loop.run_until_complete(root.wait_closed())
            assert all(n.closed for n in self.nodes)
        self.loop.close()


TreeMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestTrees = pytest.mark.slow(TreeMachine.TestCase)
