"""Lifecycles: a `transitions`-schema declaration, checked once and compiled to a table.

The declaration keeps the vocabulary of the `transitions` library (nested states,
``trigger/source/dest/conditions/unless/before/after/prepare``) so that it can be
handed to a ``transitions.Machine`` as the reference semantics and to its diagram
support.  Execution does not use a Machine: the declaration is compiled once into a
``{state: {trigger: Route}}`` table that the class holds, and the state lives on the
instance (``model._state``).  That keeps a trigger to two dict look-ups and one
attribute write, and an idle object to its own slots.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from .exceptions import DefinitionError, GuardRejected, TransitionNotAllowed

__all__ = ["DEFAULT_LIFECYCLE", "ROUTES", "Lifecycle", "Route", "TransitionSpec"]

Callback = Callable[..., Any]

#: Route families used to colour edges: the normal path, the failure path, human actions.
ROUTES: Final = ("normal", "failure", "human")
_DEFAULT_ROUTE: Final = {
    "activate": "normal",
    "start": "normal",
    "complete": "normal",
    "disable": "failure",
    "terminate": "failure",
    "enable": "human",
    "suspend": "human",
    "resume": "human",
}
_STATE_KEYS: Final = frozenset({"name", "children", "states", "final", "on_enter", "on_exit"})
_TRANSITION_KEYS: Final = frozenset(
    {"trigger", "source", "dest", "conditions", "unless", "before", "after", "prepare", "route"}
)
_CALLBACK_KEYS: Final = ("prepare", "conditions", "unless", "before", "after")


@attrs.frozen
class TransitionSpec:
    """One declared transition, as written (``source`` may name groups)."""

    trigger: str
    source: tuple[str, ...]
    dest: str
    conditions: tuple[Callback, ...] = ()
    unless: tuple[Callback, ...] = ()
    before: tuple[Callback, ...] = ()
    after: tuple[Callback, ...] = ()
    prepare: tuple[Callback, ...] = ()
    route: str = "normal"

    def as_dict(self) -> dict[str, Any]:
        """The declaration back in `transitions` schema."""
        out: dict[str, Any] = {
            "trigger": self.trigger,
            "source": self.source[0] if len(self.source) == 1 else list(self.source),
            "dest": self.dest,
            "route": self.route,
        }
        for key in _CALLBACK_KEYS:
            if value := getattr(self, key):
                out[key] = list(value)
        return out


@attrs.frozen(eq=False)
class Route:
    """A compiled transition from one leaf state: everything a step needs, pre-resolved."""

    trigger: str
    source: str
    dest: str
    spec: TransitionSpec
    prepare: tuple[Callback, ...]
    conditions: tuple[Callback, ...]
    unless: tuple[Callback, ...]
    before: tuple[Callback, ...]
    exit: tuple[Callback, ...]
    enter: tuple[Callback, ...]
    after: tuple[Callback, ...]
    #: True when nothing but the state write happens: the fast path.
    bare: bool


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _as_tuple(value: object) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)


def _takes_model(fn: Callback) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return True
    try:
        sig.bind(object())
    except TypeError:
        return False
    return True


class _Collector:
    """Gathers every problem of a declaration so that one error names them all."""

    def __init__(self) -> None:
        self.problems: dict[str, list[object]] = {}

    def add(self, kind: str, item: object) -> None:
        self.problems.setdefault(kind, []).append(item)

    def raise_if_any(self, owner: str) -> None:
        if self.problems:
            raise DefinitionError(owner, [f"{kind}: {items!r}" for kind, items in self.problems.items()])


class Lifecycle:
    """A checked, compiled lifecycle.

    ``Lifecycle(states, transitions, initial=...)`` takes the `transitions` schema.
    Guards and hooks are callables called as ``fn(model, **trigger_kwargs)``.
    Final states are declared with ``"final": True``; nothing may leave them.
    """

    __slots__ = (
        "_allowed",
        "_between",
        "_group_of",
        "_groups",
        "_states_decl",
        "_table",
        "final_states",
        "initial",
        "name",
        "states",
        "transitions",
        "triggers",
    )

    def __init__(
        self,
        states: Sequence[str | Mapping[str, Any]],
        transitions: Sequence[Mapping[str, Any]],
        *,
        initial: str = "initial",
        name: str = "lifecycle",
    ) -> None:
        self.name = name
        problems = _Collector()
        leaves: dict[str, dict[str, Any]] = {}
        groups: dict[str, tuple[str, ...]] = {}
        group_of: dict[str, tuple[str, ...]] = {}
        normalized = self._walk(states, (), leaves, groups, group_of, problems)
        self._states_decl: tuple[dict[str, Any], ...] = tuple(normalized)
        if not leaves:
            problems.add("no states declared", "add at least the initial state")
        if initial not in leaves:
            if initial in groups:
                problems.add("initial state is a group, not a state", initial)
            else:
                problems.add("initial state is not declared", initial)
        specs = self._parse_transitions(transitions, leaves, groups, problems)

        self.initial: str = initial
        self.states: tuple[str, ...] = tuple(leaves)
        self._groups = groups
        self._group_of = group_of
        self.transitions: tuple[TransitionSpec, ...] = tuple(specs)
        self.final_states: frozenset[str] = frozenset(n for n, d in leaves.items() if d.get("final"))
        # compile and check the graph even after other problems, so one error names them all
        self._table, self._between = self._compile(specs, leaves, groups, problems)
        if initial in leaves:
            self._check_graph(problems)
        problems.raise_if_any(name)
        self.triggers: tuple[str, ...] = tuple(dict.fromkeys(s.trigger for s in specs))
        self._allowed: dict[str, tuple[str, ...]] = {s: tuple(self._table[s]) for s in self.states}

    # -- declaration -----------------------------------------------------------------

    def _walk(
        self,
        decls: Iterable[str | Mapping[str, Any]],
        path: tuple[str, ...],
        leaves: dict[str, dict[str, Any]],
        groups: dict[str, tuple[str, ...]],
        group_of: dict[str, tuple[str, ...]],
        problems: _Collector,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for decl in decls:
            if isinstance(decl, str):
                decl = {"name": decl}
            if not isinstance(decl, Mapping) or not isinstance(decl.get("name"), str):
                problems.add("state declarations must be a name or a dict with 'name'", decl)
                continue
            state = dict(decl)
            name = state["name"]
            if unknown := sorted(set(state) - _STATE_KEYS):
                problems.add(f"unknown keys in state {name!r}", unknown)
            if name in leaves or name in groups or not name or "/" in name:
                problems.add("duplicate or malformed state names", name)
                continue
            for key in ("on_enter", "on_exit"):
                state[key] = _as_tuple(state.get(key))
                self._check_callbacks(f"state {name!r} {key}", state[key], problems)
            children = state.pop("children", None) or state.pop("states", None)
            if children:
                if state.get("final") or state["on_enter"] or state["on_exit"]:
                    problems.add("groups take no final/on_enter/on_exit", name)
                groups[name] = ()
                kids = self._walk(children, (*path, name), leaves, groups, group_of, problems)
                state["children"] = kids
                groups[name] = tuple(leaf for leaf, gp in group_of.items() if name in gp and leaf in leaves)
            else:
                leaves[name] = state
                group_of[name] = path
            out.append(state)
        return out

    def _check_callbacks(self, where: str, fns: tuple[Any, ...], problems: _Collector) -> None:
        for fn in fns:
            if isinstance(fn, str):
                problems.add(
                    "guards and hooks must be callables, not names (pass the function itself)",
                    f"{where}: {fn!r}",
                )
            elif not callable(fn):
                problems.add("guards and hooks that name nothing callable", f"{where}: {fn!r}")
            elif not _takes_model(fn):
                problems.add(
                    "guards and hooks must accept the model as first argument",
                    f"{where}: {_name(fn)}",
                )

    def _parse_transitions(
        self,
        decls: Sequence[Mapping[str, Any]],
        leaves: Mapping[str, Any],
        groups: Mapping[str, Any],
        problems: _Collector,
    ) -> list[TransitionSpec]:
        specs: list[TransitionSpec] = []
        for decl in decls:
            if not isinstance(decl, Mapping):
                problems.add("transitions must be dicts", decl)
                continue
            if unknown := sorted(set(decl) - _TRANSITION_KEYS):
                problems.add("unknown keys in transition", f"{decl.get('trigger')!r}: {unknown}")
            trigger, dest = decl.get("trigger"), decl.get("dest")
            source = _as_tuple(decl.get("source"))
            if not isinstance(trigger, str) or not trigger.isidentifier():
                problems.add("triggers must be identifiers", trigger)
                continue
            if source == ("*",):
                source = tuple(s for s in leaves if not leaves[s].get("final"))
            known = True
            for name in (*source, dest):
                if not isinstance(name, str) or (name not in leaves and name not in groups):
                    problems.add("unknown states in transitions", f"{trigger}: {name!r}")
                    known = False
            if not source:
                problems.add("transitions without a source", trigger)
                known = False
            if isinstance(dest, str) and dest in groups:
                problems.add("a transition must end in a state, not a group", f"{trigger} -> {dest!r}")
                known = False
            callbacks: dict[str, tuple[Any, ...]] = {}
            for key in _CALLBACK_KEYS:
                callbacks[key] = _as_tuple(decl.get(key))
                self._check_callbacks(f"{trigger} {key}", callbacks[key], problems)
            route = decl.get("route", _DEFAULT_ROUTE.get(trigger, "normal"))
            if route not in ROUTES:
                problems.add(f"routes must be one of {list(ROUTES)}", f"{trigger}: {route!r}")
            if known:
                specs.append(
                    TransitionSpec(trigger, source, dest, route=route, **callbacks)  # type: ignore[arg-type]
                )
        return specs

    # -- compilation -----------------------------------------------------------------

    def _compile(
        self,
        specs: Sequence[TransitionSpec],
        leaves: Mapping[str, dict[str, Any]],
        groups: Mapping[str, tuple[str, ...]],
        problems: _Collector,
    ) -> tuple[dict[str, dict[str, Route]], dict[tuple[str, str], str]]:
        table: dict[str, dict[str, Route]] = {s: {} for s in leaves}
        between: dict[tuple[str, str], str] = {}
        for spec in specs:
            for declared in spec.source:
                for src in groups.get(declared, (declared,)):
                    if spec.trigger in table[src]:
                        problems.add("duplicate trigger/source pairs", f"{spec.trigger} from {src!r}")
                        continue
                    exit_, enter = leaves[src]["on_exit"], leaves[spec.dest]["on_enter"]
                    table[src][spec.trigger] = Route(
                        trigger=spec.trigger,
                        source=src,
                        dest=spec.dest,
                        spec=spec,
                        prepare=spec.prepare,
                        conditions=spec.conditions,
                        unless=spec.unless,
                        before=spec.before,
                        exit=exit_,
                        enter=enter,
                        after=spec.after,
                        bare=not (
                            spec.prepare
                            or spec.conditions
                            or spec.unless
                            or spec.before
                            or spec.after
                            or exit_
                            or enter
                        ),
                    )
                    between.setdefault((src, spec.dest), spec.trigger)
        return table, between

    def _check_graph(self, problems: _Collector) -> None:
        for state in self.states:
            outs = self._table[state]
            if state in self.final_states and outs:
                problems.add("final states with transitions out", state)
            if state not in self.final_states and not outs:
                problems.add("states with no way out", state)
        seen = {self.initial}
        todo = deque([self.initial])
        while todo:
            for route in self._table[todo.popleft()].values():
                if route.dest not in seen:
                    seen.add(route.dest)
                    todo.append(route.dest)
        if unreachable := [s for s in self.states if s not in seen]:
            for state in unreachable:
                problems.add("unreachable states", state)

    # -- queries ---------------------------------------------------------------------

    @property
    def groups(self) -> Mapping[str, tuple[str, ...]]:
        """Each group and the leaf states under it."""
        return self._groups

    def group_path(self, state: str) -> tuple[str, ...]:
        """The groups enclosing `state`, outermost first."""
        return self._group_of[state]

    def allowed(self, state: str) -> tuple[str, ...]:
        """Triggers with a route out of `state` (guards not evaluated)."""
        return self._allowed[state]

    def route(self, state: str, trigger: str) -> Route | None:
        """The compiled route for `trigger` from `state`, if any."""
        return self._table[state].get(trigger)

    def routes(self) -> Iterable[Route]:
        """Every compiled route, leaf to leaf."""
        for row in self._table.values():
            yield from row.values()

    def is_final(self, state: str) -> bool:
        return state in self.final_states

    def trigger_between(self, source: str, dest: str) -> str | None:
        """The trigger that moves `source` to `dest`, if the lifecycle has one."""
        return self._between.get((source, dest))

    def declaration(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``(states, transitions)`` in `transitions` schema, callables kept."""

        def copy(decl: dict[str, Any]) -> dict[str, Any]:
            out = {k: v for k, v in decl.items() if v not in ((), None, False)}
            if "children" in out:
                out["children"] = [copy(c) for c in out["children"]]
            return out

        return [copy(d) for d in self._states_decl], [t.as_dict() for t in self.transitions]

    def __repr__(self) -> str:
        return f"<Lifecycle {self.name}: {len(self.states)} states, {len(self.triggers)} triggers>"

    # -- derivation of new lifecycles --------------------------------------------------

    def extend(
        self,
        *,
        states: Mapping[str | None, Sequence[str | Mapping[str, Any]]] | None = None,
        transitions: Sequence[Mapping[str, Any]] = (),
        name: str | None = None,
    ) -> Lifecycle:
        """A new lifecycle with more states (``{group or None: [decls]}``) and transitions."""
        decl_states, decl_transitions = self.declaration()
        additions = dict(states or {})
        top = list(additions.pop(None, ()))

        def graft(decls: list[dict[str, Any]]) -> None:
            for d in decls:
                if "children" in d:
                    d["children"].extend(additions.pop(d["name"], ()))
                    graft(d["children"])

        graft(decl_states)
        name = name or f"{self.name}+"
        if additions:
            missing = sorted(str(g) for g in additions)
            raise DefinitionError(name, [f"extend() names groups that do not exist: {missing}"])
        return Lifecycle(
            [*decl_states, *top],
            [*decl_transitions, *transitions],
            initial=self.initial,
            name=name,
        )

    def with_guard(
        self,
        trigger: str,
        *,
        conditions: Callback | Sequence[Callback] = (),
        unless: Callback | Sequence[Callback] = (),
        source: str | None = None,
        name: str | None = None,
    ) -> Lifecycle:
        """A new lifecycle where `trigger` (from `source`, or everywhere) also needs these guards."""
        _, decl_transitions = self.declaration()
        matched = False
        for t in decl_transitions:
            srcs = _as_tuple(t["source"])
            if t["trigger"] == trigger and (source is None or source in srcs):
                t["conditions"] = [*t.get("conditions", ()), *_as_tuple(conditions)]
                t["unless"] = [*t.get("unless", ()), *_as_tuple(unless)]
                matched = True
        if not matched:
            where = f" from {source!r}" if source else ""
            raise DefinitionError(
                name or self.name,
                [f"with_guard() names no transition: {trigger!r}{where} (triggers: {list(self.triggers)})"],
            )
        states, _ = self.declaration()
        return Lifecycle(states, decl_transitions, initial=self.initial, name=name or f"{self.name}+")

    # -- execution -------------------------------------------------------------------

    def refuse(self, model: Any, trigger: str) -> TransitionNotAllowed:
        """The error for `trigger` fired where the table has no route."""
        state = model._state
        return TransitionNotAllowed(
            _label(model), state, trigger, self._allowed.get(state, ()), final=state in self.final_states
        )

    def check(self, model: Any, trigger: str, kwargs: Mapping[str, Any]) -> Route:
        """The route for `trigger` from the model's state, after its guards passed.

        Runs the route's ``prepare`` callbacks and guards; raises `TransitionNotAllowed`
        (or its `GuardRejected` subclass) with nothing changed.
        """
        route = self._table[model._state].get(trigger)
        if route is None:
            raise self.refuse(model, trigger)
        if route.bare:
            return route
        for fn in route.prepare:
            fn(model, **kwargs)
        for fn in route.conditions:
            if not fn(model, **kwargs):
                raise self._rejected(model, route, fn, "conditions")
        for fn in route.unless:
            if fn(model, **kwargs):
                raise self._rejected(model, route, fn, "unless")
        return route

    @staticmethod
    def apply(model: Any, route: Route, kwargs: Mapping[str, Any]) -> None:
        """Run ``before`` and ``on_exit``, write the state, run ``on_enter`` (not ``after``)."""
        if route.bare:
            model._state = route.dest
            return
        for fn in route.before:
            fn(model, **kwargs)
        for fn in route.exit:
            fn(model, **kwargs)
        model._state = route.dest
        for fn in route.enter:
            fn(model, **kwargs)

    def step(self, model: Any, trigger: str, kwargs: Mapping[str, Any]) -> Route:
        """`check` then `apply`: fire up to ``on_enter`` and return the route.

        The caller runs ``route.after`` (see `fire`), so that it can record the change
        before an after-hook can raise.
        """
        route = self.check(model, trigger, kwargs)
        self.apply(model, route, kwargs)
        return route

    def fire(self, model: Any, trigger: str, /, **kwargs: Any) -> str:
        """Fire `trigger` on any object with a ``_state`` attribute; return the new state."""
        route = self.step(model, trigger, kwargs)
        for fn in route.after:
            fn(model, **kwargs)
        return route.dest

    def _rejected(self, model: Any, route: Route, fn: Callback, kind: str) -> GuardRejected:
        return GuardRejected(
            _label(model), route.source, route.trigger, self._allowed[route.source], _name(fn), kind
        )


def _label(model: Any) -> str:
    return str(getattr(model, "path", None) or type(model).__name__)


DEFAULT_LIFECYCLE: Final = Lifecycle(
    states=[
        {
            "name": "open",
            "children": [
                {
                    "name": "notRunning",
                    "children": [
                        {"name": "notStarted", "children": ["initial", "ready"]},
                        {"name": "suspended", "children": ["disabled", "intermitted"]},
                    ],
                },
                "running",
            ],
        },
        {
            "name": "closed",
            "children": [{"name": "completed", "final": True}, {"name": "terminated", "final": True}],
        },
    ],
    transitions=[
        {"trigger": "activate", "source": "initial", "dest": "ready"},
        {"trigger": "disable", "source": "initial", "dest": "disabled"},
        {"trigger": "enable", "source": "disabled", "dest": "ready"},
        {"trigger": "start", "source": "ready", "dest": "running"},
        {"trigger": "complete", "source": "running", "dest": "completed"},
        {"trigger": "suspend", "source": "running", "dest": "intermitted"},
        {"trigger": "resume", "source": "intermitted", "dest": "running"},
        {"trigger": "terminate", "source": "open", "dest": "terminated"},
    ],
    initial="initial",
    name="default",
)
