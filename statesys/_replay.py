"""Re-checking a journal: every recorded step must be a legal move of its lifecycle."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import IO

import attrs

from ._events import read_journal
from ._lifecycle import DEFAULT_LIFECYCLE, Lifecycle

__all__ = ["ReplayReport", "replay"]


@attrs.frozen
class ReplayReport:
    """What `replay` found: ``ok``, or the first problem and its journal line."""

    events: int
    states: Mapping[str, str]  #: last state of each system path
    problem: str | None = None
    line: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.events} events, {len(self.states)} systems, every step legal"
        return f"line {self.line}: {self.problem}"


def replay(
    journal: str | os.PathLike[str] | IO[str],
    lifecycle: Lifecycle | Mapping[str, Lifecycle] | Callable[[str], Lifecycle] = DEFAULT_LIFECYCLE,
) -> ReplayReport:
    """Check a JSON-lines journal against the lifecycle(s); report the first illegal or missing step.

    `lifecycle` is one lifecycle for every system, a mapping from path to lifecycle
    (missing paths use the default), or a function of the path.
    """
    if isinstance(lifecycle, Lifecycle):
        single = lifecycle
        lookup: Callable[[str], Lifecycle] = lambda _path: single  # noqa: E731
    elif isinstance(lifecycle, Mapping):
        table = lifecycle
        lookup = lambda path: table.get(path, DEFAULT_LIFECYCLE)  # noqa: E731
    else:
        lookup = lifecycle
    states: dict[str, str] = {}
    count = 0
    last_time = float("-inf")

    def fail(line: int, problem: str) -> ReplayReport:
        return ReplayReport(count, dict(states), problem, line)

    for line, event in read_journal(journal):
        lc = lookup(event.path)
        where = f"{event.path} {event.trigger} {event.source}->{event.dest}"
        if event.time < last_time:
            return fail(line, f"{where}: time goes backwards (events reordered?)")
        last_time = event.time
        current = states.get(event.path, lc.initial)
        if event.source != current:
            return fail(
                line,
                f"{where}: missing step: {event.path} was {current!r}, "
                f"this event starts from {event.source!r}",
            )
        if lc.is_final(current):
            return fail(line, f"{where}: illegal step: {current!r} is final, nothing leaves it")
        route = lc.route(current, event.trigger)
        if route is None or route.dest != event.dest:
            allowed = ", ".join(f"{r}->{lc.route(current, r).dest}" for r in lc.allowed(current))  # type: ignore[union-attr]
            return fail(
                line, f"{where}: illegal step: from {current!r} the lifecycle allows {allowed or 'nothing'}"
            )
        states[event.path] = event.dest
        count += 1
    return ReplayReport(count, states)
