"""Hypothesis strategies of trigger sequences, drawn from an exhaustive enumeration.

A lifecycle's skeleton (its table, guards aside) is small: the default one has 57
legal sequences of up to 12 triggers.  Enumerating them, shortest first, and letting
hypothesis pick one with `sampled_from` gives every sequence a fair chance (a random
walk reaches ``activate, disable, enable, start, suspend, resume`` once in hundreds
of tries) and shrinks towards the shortest sequence.  Only a lifecycle too large to
enumerate falls back to a generated walk.  Data (causes, keyword arguments) is drawn
per step on top of the skeleton.
"""

from __future__ import annotations

import functools
import string
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeAlias

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from .._lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from .._system import System
from ._script import Step

__all__ = [
    "Arguments",
    "causes",
    "legal_sequences",
    "sequences_with_one_illegal_step",
    "transition_tour",
    "trigger_arguments",
]

#: Per trigger: a strategy of keyword arguments, or a list of the alternatives to try.
Arguments: TypeAlias = Mapping[str, "st.SearchStrategy[Mapping[str, Any]] | Sequence[Mapping[str, Any]]"]

#: Causes anyone would write; drawn alongside generated text.
CAUSES: Final = ("maintenance", "quota exhausted", "operator request")
# An explicit alphabet (with quotes, a tab, a newline and non-ASCII letters, which
# logs, journals and replay scripts must survive) spares hypothesis its one-off
# Unicode table build, which trips the too-slow health check on a first run.
_CAUSE_ALPHABET: Final = string.ascii_letters + string.digits + " _-.:'\"\t\néü中✓"
#: Above this many sequences the skeleton is walked at random instead of enumerated.
ENUMERATION_LIMIT: Final = 20_000


def _lifecycle_of(source: Lifecycle | type[System]) -> Lifecycle:
    if isinstance(source, Lifecycle):
        return source
    lifecycle = getattr(source, "lifecycle", None)
    if isinstance(lifecycle, Lifecycle):
        return lifecycle
    raise InvalidArgument(f"expected a statesys.Lifecycle or a System class, got {source!r}")


def causes() -> st.SearchStrategy[str]:
    """Non-empty cause texts, as ``disable(cause)`` and ``terminate(cause)`` take them."""
    return st.one_of(st.sampled_from(CAUSES), st.text(_CAUSE_ALPHABET, min_size=1, max_size=24))


def _default_arguments(trigger: str) -> st.SearchStrategy[Mapping[str, Any]]:
    if trigger == "disable":  # a cause is required
        return st.fixed_dictionaries({"cause": causes()})
    if trigger == "terminate":  # with or without a cause
        return st.one_of(st.just({}), st.fixed_dictionaries({"cause": causes()}))
    return st.just({})


def trigger_arguments(
    lifecycle: Lifecycle | type[System], arguments: Arguments | None = None
) -> dict[str, st.SearchStrategy[Mapping[str, Any]]]:
    """A strategy of keyword arguments for every trigger of `lifecycle`.

    `arguments` overrides triggers one by one, with a strategy or a list of the
    alternatives (``{"activate": [{}, {"fail": True}]}``).  By default ``disable``
    gets a cause, ``terminate`` a cause or none, the others nothing.
    """
    lc = _lifecycle_of(lifecycle)
    given = dict(arguments or {})
    if unknown := sorted(set(given) - set(lc.triggers)):
        raise InvalidArgument(
            f"arguments name triggers {lc.name!r} does not have: {unknown} (it has {list(lc.triggers)})"
        )
    out: dict[str, st.SearchStrategy[Mapping[str, Any]]] = {}
    for trigger in lc.triggers:
        value = given.get(trigger)
        if value is None:
            out[trigger] = _default_arguments(trigger)
        elif isinstance(value, st.SearchStrategy):
            out[trigger] = value
        else:
            choices = list(value)
            if not choices or not all(isinstance(c, Mapping) for c in choices):
                raise InvalidArgument(
                    f"arguments[{trigger!r}]: expected a strategy or a non-empty list of dicts, got {value!r}"
                )
            out[trigger] = st.sampled_from(choices)
    return out


# -- enumeration of the skeleton ----------------------------------------------------------------


def legal_paths(
    lifecycle: Lifecycle, max_len: int, *, limit: int = ENUMERATION_LIMIT
) -> list[tuple[str, ...]] | None:
    """Every legal trigger sequence of length 1..`max_len` from the initial state,
    shortest first; None if there are more than `limit`."""
    out: list[tuple[str, ...]] = []
    frontier: list[tuple[tuple[str, ...], str]] = [((), lifecycle.initial)]
    for _ in range(max_len):
        nxt = []
        for path, state in frontier:
            for trigger in lifecycle.allowed(state):
                route = lifecycle.route(state, trigger)
                assert route is not None
                nxt.append(((*path, trigger), route.dest))
        out.extend(p for p, _ in nxt)
        if len(out) > limit:
            return None
        frontier = nxt
    return out


def _end_state(lifecycle: Lifecycle, path: Sequence[str]) -> str:
    state = lifecycle.initial
    for trigger in path:
        route = lifecycle.route(state, trigger)
        assert route is not None
        state = route.dest
    return state


def _check_lengths(max_len: int, min_len: int) -> None:
    if max_len < 1:
        raise InvalidArgument(f"max_len must be at least 1, got {max_len}")
    if not 0 <= min_len <= max_len:
        raise InvalidArgument(f"min_len must be between 0 and max_len={max_len}, got {min_len}")


def _with_arguments(
    path: Sequence[str],
    args: Mapping[str, st.SearchStrategy[Mapping[str, Any]]],
    where: str,
    illegal: str | None = None,
) -> st.SearchStrategy[list[Step]]:
    parts = [args[t].map(functools.partial(_step, t, where, False)) for t in path]
    if illegal is not None:
        parts.append(args[illegal].map(functools.partial(_step, illegal, where, True)))
    return st.tuples(*parts).map(list)


def _step(trigger: str, where: str, illegal: bool, kwargs: Mapping[str, Any]) -> Step:
    return Step(trigger, kwargs, where, illegal=illegal)


@st.composite
def _walk(
    draw: st.DrawFn,
    lifecycle: Lifecycle,
    max_len: int,
    min_len: int,
    args: Mapping[str, st.SearchStrategy[Mapping[str, Any]]],
    where: str,
) -> list[Step]:
    """A random legal walk: the fallback for skeletons too large to enumerate."""
    state = lifecycle.initial
    steps: list[Step] = []
    while len(steps) < max_len:
        allowed = lifecycle.allowed(state)
        # 0 stops; hypothesis shrinks integers towards 0, so walks shrink shorter
        if not allowed or (len(steps) >= min_len and draw(st.integers(0, 7)) == 0):
            break
        trigger = draw(st.sampled_from(allowed))
        steps.append(Step(trigger, draw(args[trigger]), where))
        route = lifecycle.route(state, trigger)
        assert route is not None
        state = route.dest
    return steps


def legal_sequences(
    lifecycle: Lifecycle | type[System] = DEFAULT_LIFECYCLE,
    max_len: int = 12,
    *,
    min_len: int = 1,
    arguments: Arguments | None = None,
    path: str = "",
) -> st.SearchStrategy[list[Step]]:
    """Sequences of `Step` that the lifecycle's table allows, `min_len` to `max_len` long.

    Every such sequence is enumerated (shortest first) and one is sampled, so every
    sequence is as likely as any other and failures shrink to the shortest one;
    arguments are drawn for each step (see `trigger_arguments`).  Guards are not
    part of the table: a legal sequence may still be refused by a guard.  `path`
    addresses a subsystem of a tree.
    """
    _check_lengths(max_len, min_len)
    lc = _lifecycle_of(lifecycle)
    args = trigger_arguments(lc, arguments)
    paths = legal_paths(lc, max_len)
    if paths is None:
        return _walk(lc, max_len, min_len, args, path)
    chosen = [p for p in paths if len(p) >= min_len]
    if min_len == 0:
        chosen.insert(0, ())
    if not chosen:
        raise InvalidArgument(f"{lc.name!r} has no legal sequence of {min_len} to {max_len} triggers")
    return _pick(chosen).flatmap(lambda p: _with_arguments(p, args, path))


def _pick(paths: Sequence[tuple[str, ...]]) -> st.SearchStrategy[tuple[str, ...]]:
    """One of `paths`, drawn as (length, then which): hypothesis shrinks the length first,
    so a failure shrinks to a shortest failing sequence rather than a low index."""
    by_length: dict[int, list[tuple[str, ...]]] = {}
    for p in paths:
        by_length.setdefault(len(p), []).append(p)
    pools = {n: st.sampled_from(group) for n, group in by_length.items()}
    return st.sampled_from(sorted(pools)).flatmap(pools.__getitem__)


def sequences_with_one_illegal_step(
    lifecycle: Lifecycle | type[System] = DEFAULT_LIFECYCLE,
    max_len: int = 12,
    *,
    arguments: Arguments | None = None,
    path: str = "",
) -> st.SearchStrategy[list[Step]]:
    """A legal sequence (possibly empty) followed by one trigger the table refuses there.

    The last step has ``illegal=True``: firing it must raise `TransitionNotAllowed`
    and change nothing (state, cause, events).  At most `max_len` steps in all.
    """
    _check_lengths(max_len, 1)
    lc = _lifecycle_of(lifecycle)
    args = trigger_arguments(lc, arguments)
    paths = legal_paths(lc, max_len - 1) if max_len > 1 else []
    if paths is None:
        return _walk(lc, max_len - 1, 0, args, path).flatmap(
            lambda steps: _then_illegal(lc, steps, args, path)
        )
    pairs = [
        (p, bad) for p in [(), *paths] for bad in lc.triggers if bad not in lc.allowed(_end_state(lc, p))
    ]
    if not pairs:
        raise InvalidArgument(f"every trigger of {lc.name!r} is allowed everywhere: nothing is illegal")
    by_length: dict[int, list[tuple[tuple[str, ...], str]]] = {}
    for pair in pairs:
        by_length.setdefault(len(pair[0]), []).append(pair)
    pools = {n: st.sampled_from(group) for n, group in by_length.items()}
    return (
        st.sampled_from(sorted(pools))
        .flatmap(pools.__getitem__)
        .flatmap(lambda pair: _with_arguments(pair[0], args, path, pair[1]))
    )


def _then_illegal(
    lc: Lifecycle, steps: list[Step], args: Mapping[str, st.SearchStrategy[Mapping[str, Any]]], where: str
) -> st.SearchStrategy[list[Step]]:
    state = _end_state(lc, [s.trigger for s in steps])
    bad = [t for t in lc.triggers if t not in lc.allowed(state)]
    if not bad:  # a state allowing everything: nothing to add here
        return st.just(steps)
    return st.sampled_from(bad).flatmap(lambda t: args[t].map(lambda kw: [*steps, _step(t, where, True, kw)]))


def transition_tour(lifecycle: Lifecycle | type[System] = DEFAULT_LIFECYCLE) -> tuple[tuple[str, ...], ...]:
    """For every transition of the lifecycle: the shortest trigger sequence that takes it.

    Each sequence is a shortest way to the transition's source followed by its
    trigger, so together they cover every edge, including the ones shortest- and
    simple-path tours skip (``enable``, ``resume``).  Plain data, for
    ``pytest.mark.parametrize`` or ``st.sampled_from``.
    """
    lc = _lifecycle_of(lifecycle)
    shortest: dict[str, tuple[str, ...]] = {lc.initial: ()}
    todo = deque([lc.initial])
    while todo:
        state = todo.popleft()
        for trigger in lc.allowed(state):
            route = lc.route(state, trigger)
            assert route is not None
            if route.dest not in shortest:
                shortest[route.dest] = (*shortest[state], trigger)
                todo.append(route.dest)
    return tuple((*shortest[r.source], r.trigger) for r in lc.routes() if r.source in shortest)
