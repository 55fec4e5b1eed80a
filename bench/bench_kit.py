"""The property-testing kit: its cost on the default lifecycle, and which part finds which bug.

Baseline: plain hypothesis random search, measured in the same run: a
``RuleBasedStateMachine`` whose one rule fires a uniformly random trigger at a
uniformly random system, through the same checked harness as the kit (so only the
search differs), with hypothesis's default settings (100 examples of 50 steps).

Detection: every bug of the catalogue in ``tests/testing`` (buggy user systems and
lifecycles, library mutants) against each part of the kit, over a few campaigns
with fresh random seeds and no example database:

- explorer: `explore` with its defaults (deterministic: found or not, and the
  length of its shortest trace);
- state machine: ``lifecycle_test(...)``'s machine with its default settings
  (found in k of n campaigns; median length of the shrunk failing run);
- strategies: ``@given(legal_sequences | sequences_with_one_illegal_step)`` run with
  `check_steps` at the root (k of n);
- policy check: `check_policy` on every parent's policy.

The kit (what ``lifecycle_test(X).TestCase`` runs) finds a bug on every run when the
explorer or the policy check does.  ``--quick`` runs 2 campaigns instead of 5.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from _util import Table, arguments, ratio, secs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from statesys import System
from statesys.testing import (
    Harness,
    InvariantViolation,
    Step,
    SystemMachine,
    check_steps,
    explore,
    legal_sequences,
    lifecycle_test,
    sequences_with_one_illegal_step,
    trigger_arguments,
)
from tests.testing import CATALOGUE, PROBE_ARGUMENTS, Bug, Probe, patched

ROW_EXPLORE = "explore, depth 12"
ROW_MACHINE = "state machine, default settings"
ROW_KIT = "kit (explore + state machine + policy check)"
TARGET_KIT = 10.0  # seconds, on the default lifecycle


def plain_machine(target: Callable[[], System], invariants: Sequence[Callable[[System], object]]) -> type:
    """The baseline: uniformly random triggers at uniformly random systems."""
    sample = target()
    prefix = len(sample.path) + 1
    paths = [n.path[prefix:] for n in sample.walk()]
    triggers = sorted({t for n in sample.walk() for t in n.lifecycle.triggers})
    arguments = trigger_arguments(sample.lifecycle)  # the same data as the kit: only the search differs

    class PlainRandomSearch(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.harness = Harness(target, invariants=invariants)

        @rule(path=st.sampled_from(paths), trigger=st.sampled_from(triggers), data=st.data())
        def fire(self, path: str, trigger: str, data: st.DataObject) -> None:
            kwargs = data.draw(arguments.get(trigger, st.just({})), label="kwargs")
            self.harness.fire(Step(trigger, kwargs, path))

        def teardown(self) -> None:
            self.harness.close()

    return PlainRandomSearch


def campaign(run: Callable[[], object]) -> tuple[bool, int | None, float]:
    """Run one campaign: (found?, steps of the failing run if the kit's checks said so, seconds)."""
    t0 = time.perf_counter()
    try:
        run()
    except InvariantViolation as exc:
        return True, len(exc.steps), time.perf_counter() - t0
    except AssertionError:
        return True, None, time.perf_counter() - t0
    return False, None, time.perf_counter() - t0


#: A fresh random seed each campaign, no example database: every campaign starts from nothing.
FRESH = settings(
    database=None, derandomize=False, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def run_machine(machine: type[SystemMachine]) -> None:
    run_state_machine_as_test(
        machine, settings=settings(machine.test_settings, database=None, derandomize=False)
    )


def run_plain(machine: type) -> None:
    run_state_machine_as_test(machine, settings=FRESH)


def run_strategies(bug: Bug) -> None:
    lifecycle = bug.target().lifecycle
    sequences = st.one_of(
        legal_sequences(lifecycle, 12, arguments=bug.arguments or None),
        sequences_with_one_illegal_step(lifecycle, 12, arguments=bug.arguments or None),
    )

    @FRESH
    @given(sequences)
    def sequences_hold(steps: list[Step]) -> None:
        check_steps(bug.target, steps, invariants=bug.invariants)

    sequences_hold()


def hits(results: list[tuple[bool, int | None, float]]) -> str:
    found = [r for r in results if r[0]]
    steps = [r[1] for r in found if r[1] is not None]
    text = f"{len(found)}/{len(results)}"
    if steps:
        text += f", {plural(statistics.median(steps), 'step')}"
    return text


def plural(n: float, word: str) -> str:
    return f"{n:g} {word}" + ("" if n == 1 else "s")


def runtime(table: Table, target: Callable[[], System], name: str, arguments: Any) -> None:
    machine = lifecycle_test(target, arguments=arguments)
    t0 = time.perf_counter()
    report = explore(target, 12, arguments=arguments)
    t_explore = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_machine(machine)
    t_machine = time.perf_counter() - t0
    t0 = time.perf_counter()
    machine.check_policies()
    t_policy = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_plain(plain_machine(target, ()))
    t_plain = time.perf_counter() - t0
    kit = t_explore + t_machine + t_policy
    table.add(
        f"{ROW_EXPLORE}: {name}",
        f"{secs(t_explore)} ({report.configurations} configurations, "
        f"{len(report.transitions)}/{len(report.declared_transitions)} transitions)",
        f"plain random search {secs(t_plain)}",
        ratio(t_explore, t_plain),
        "n/a",
        None,
    )
    table.add(
        f"{ROW_MACHINE}: {name}",
        secs(t_machine),
        f"plain random search {secs(t_plain)}",
        ratio(t_machine, t_plain),
        "n/a",
        None,
    )
    table.add(
        f"{ROW_KIT}: {name}",
        secs(kit),
        f"plain random search {secs(t_plain)}",
        ratio(kit, t_plain),
        f"≤ {TARGET_KIT:g} s",
        kit <= TARGET_KIT,
    )


def detection(table: Table, bug: Bug, campaigns: int) -> None:
    with patched(bug):
        t0 = time.perf_counter()
        report = explore(bug.target, arguments=bug.arguments, invariants=bug.invariants)
        t_explore = time.perf_counter() - t0
        machine = lifecycle_test(bug.target, arguments=bug.arguments, invariants=bug.invariants)
        policies_fail = any(not r.ok for r in machine.check_policies())
        machine_runs = [campaign(lambda: run_machine(machine)) for _ in range(campaigns)]
        strategy_runs = [campaign(lambda: run_strategies(bug)) for _ in range(campaigns)]
        plain = plain_machine(bug.target, bug.invariants)
        plain_runs = [campaign(lambda: run_plain(plain)) for _ in range(campaigns)]
    found_by = report.counterexample
    explorer = (
        f"explorer: {plural(len(found_by.steps), 'step')} ({secs(t_explore)})" if found_by else "explorer: —"
    )
    parts = [
        explorer,
        f"machine: {hits(machine_runs)}",
        f"strategies: {hits(strategy_runs)}",
        f"policy check: {'found' if policies_fail else '—'}",
    ]
    every_run = found_by is not None or policies_fail
    kit_hits = campaigns if every_run else sum(r[0] for r in machine_runs)
    plain_hits = sum(r[0] for r in plain_runs)
    table.add(
        bug.name,
        "; ".join(parts),
        f"plain random search: {hits(plain_runs)}",
        ratio(kit_hits, plain_hits) if plain_hits else f"{kit_hits}/{campaigns} vs 0",
        "every run",
        every_run,
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = arguments(__doc__, "2 campaigns per bug instead of 5")
    parser.add_argument("--campaigns", type=int, default=None, help="campaigns per bug and part")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse(argv)
    # the planted bugs make runtime tasks fail, which the library logs as errors: the kit reports them
    logging.getLogger("statesys").addHandler(logging.NullHandler())
    campaigns = opts.campaigns or (2 if opts.quick else 5)
    cost = Table("statesys.testing: cost on the default lifecycle")
    runtime(cost, System, "System (no hooks)", None)
    runtime(cost, Probe, "Probe (every hook, failing prepare)", PROBE_ARGUMENTS)
    cost.note(
        "plain random search: one hypothesis run with default settings, the same checks, random triggers"
    )
    print(cost.render())
    print()
    found_table = Table(f"statesys.testing: planted bugs, {campaigns} campaigns each")
    for bug in CATALOGUE:
        print(f"... {bug.name}", file=sys.stderr, flush=True)  # shrinking failures takes a while
        detection(found_table, bug, campaigns)
    found_table.note(
        "explorer: length of its shortest trace; machine/strategies/plain: campaigns that found the bug, "
        "median steps of the shrunk failing run"
    )
    found_table.note("ratio: campaigns the kit finds it in, over those plain random search does")
    print(found_table.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
