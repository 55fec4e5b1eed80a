"""Derivation policies: how a parent's state follows from its children's.

A parent keeps a count of its children by state (its own main counting as one more
child), so a policy reads a handful of counters instead of rescanning children:
re-deriving after a leaf event costs O(depth), whatever the fan-out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs

__all__ = ["FAIL_FAST", "DerivationPolicy", "FailFast"]


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
