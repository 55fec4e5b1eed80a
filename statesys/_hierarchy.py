"""Derivation policies: how a parent's state follows from its children's.

A parent keeps a count of its children by state (its own main counting as one more
child), so a policy reads a handful of counters instead of rescanning children:
re-deriving after a leaf event costs O(depth), whatever the fan-out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:
    from ._lifecycle import Lifecycle

__all__ = ["FAIL_FAST", "DerivationPolicy", "FailFast", "PolicyReport", "check_policy"]


class DerivationPolicy(Protocol):
    """Maps counts of children by state to the parent's state."""

    @property
    def terminates_siblings(self) -> bool:
        """Whether a terminated child makes the parent terminate its open siblings."""
        ...

    def derive(self, counts: Mapping[str, int], total: int) -> str:
        """The parent's state given ``counts[state]`` of its `total` children."""
        ...


@attrs.frozen
class FailFast:
    """The default rule (first match wins), fail-fast like OTP's ``one_for_all``.

    1. any child terminated → terminated (the open siblings are then terminated)
    2. all children completed → completed
    3. any child initial → initial
    4. any child disabled → disabled
    5. any child ready → ready
    6. every open child intermitted → intermitted
    7. otherwise → running
    """

    terminates_siblings: bool = True

    def derive(self, counts: Mapping[str, int], total: int) -> str:
        if counts.get("terminated", 0):
            return "terminated"
        completed = counts.get("completed", 0)
        if completed == total:
            return "completed"
        if counts.get("initial", 0):
            return "initial"
        if counts.get("disabled", 0):
            return "disabled"
        if counts.get("ready", 0):
            return "ready"
        if counts.get("intermitted", 0) == total - completed:
            return "intermitted"
        return "running"


FAIL_FAST = FailFast()


Config = tuple[tuple[str, ...], str]  # (sorted child states, parent state)


@attrs.frozen
class PolicyReport:
    """What `check_policy` visited, and the shortest trace to the first illegal parent move."""

    configurations: int
    moves: int
    violation: str | None = None
    trace: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.violation is None

    def __str__(self) -> str:
        head = f"{self.configurations} configurations, {self.moves} child moves"
        if self.ok:
            return f"ok: {head}, every parent move legal"
        return f"{self.violation}\n  after: " + "\n  then:  ".join(self.trace) + f"\n  ({head})"


def check_policy(
    policy: DerivationPolicy,
    lifecycle: Lifecycle | None = None,
    *,
    max_children: int = 4,
) -> PolicyReport:
    """Visit every configuration of a parent with 1..`max_children` children.

    Each child moves freely along `lifecycle` (every trigger from its state, guards
    ignored), which covers fail-fast cascades too: they are terminations of open
    siblings.  After every move the parent takes ``policy.derive``; the move must be
    a transition of `lifecycle` (or no move), and nothing may leave a final state.
    The parent's own part is one of the children here, as at run time.
    """
    if lifecycle is None:
        from ._lifecycle import DEFAULT_LIFECYCLE

        lifecycle = DEFAULT_LIFECYCLE
    configurations = moves = 0
    for n in range(1, max_children + 1):
        start_children = (lifecycle.initial,) * n
        start: Config = (start_children, _derive(policy, start_children))
        if start[1] != lifecycle.initial:
            return PolicyReport(
                configurations, moves, f"{n} new children derive {start[1]!r}, not {lifecycle.initial!r}"
            )
        parents: dict[Config, tuple[Config, str] | None] = {start: None}
        todo = deque([start])
        while todo:
            config = todo.popleft()
            configurations += 1
            children, parent = config
            for i, state in enumerate(children):
                if i and children[i - 1] == state:
                    continue  # children are a multiset: moving either twin is the same move
                for trigger in lifecycle.allowed(state):
                    route = lifecycle.route(state, trigger)
                    assert route is not None
                    moves += 1
                    after = tuple(sorted((*children[:i], route.dest, *children[i + 1 :])))
                    derived = _derive(policy, after)
                    step = f"child {state} --{trigger}--> {route.dest}: parent {parent} -> {derived}"
                    problem = None
                    if derived != parent:
                        if lifecycle.is_final(parent):
                            problem = f"parent left the final state {parent!r}"
                        elif lifecycle.trigger_between(parent, derived) is None:
                            problem = f"illegal parent move {parent!r} -> {derived!r}"
                    if problem:
                        trace = [*_trace(parents, config), f"{list(children)}: {step}"]
                        return PolicyReport(configurations, moves, problem, tuple(trace))
                    nxt: Config = (after, derived)
                    if nxt not in parents:
                        parents[nxt] = (config, f"{list(children)}: {step}")
                        todo.append(nxt)
    return PolicyReport(configurations, moves)


def _derive(policy: DerivationPolicy, children: tuple[str, ...]) -> str:
    counts: dict[str, int] = {}
    for state in children:
        counts[state] = counts.get(state, 0) + 1
    return policy.derive(counts, len(children))


def _trace(parents: dict[Config, tuple[Config, str] | None], config: Config) -> list[str]:
    steps: list[str] = []
    link = parents[config]
    while link is not None:
        config, step = link
        steps.append(step)
        link = parents[config]
    return steps[::-1]
