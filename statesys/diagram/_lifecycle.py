"""Lifecycle diagrams: drawn by `transitions`' Graphviz support from the declaration.

A `Lifecycle` keeps its declaration in `transitions` schema, so the drawing is done by
``transitions.extensions.diagrams.HierarchicalGraphMachine`` with its ``graphviz``
backend: it already lays out nested states as clusters and draws a transition whose
source is a group once, from the group's cluster.  statesys only adapts it:

* states are keyed by their group path joined with ``/`` (a character no statesys
  state name may contain), while labels show the plain names;
* each transition carries its route, and the edge is coloured by it;
* guards become their names (``!name`` for ``unless``), which is all a drawing needs;
* the initial state gets an entry arrow, final states a double border, and the
  anchor points transitions puts in each cluster are hidden, since here they would
  read as initial pseudostates.

The Mermaid text is written from the lifecycle directly: statesys state names are
unique across groups, so they can be Mermaid ids as they are, where transitions'
Mermaid backend would key them by joined paths.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, overload

from .._lifecycle import DEFAULT_LIFECYCLE, ROUTES, Lifecycle
from ._render import Format, GraphvizNotFound, check_format, render

if TYPE_CHECKING:
    import graphviz

__all__ = [
    "ROUTE_COLOURS",
    "lifecycle",
    "lifecycle_dot",
    "lifecycle_graph",
    "lifecycle_mermaid",
]

#: Edge colour of each route: the normal path, the failure path, human actions.
ROUTE_COLOURS: Final[Mapping[str, str]] = MappingProxyType(
    {"normal": "blue", "failure": "red", "human": "darkgreen"}
)
_SEPARATOR: Final = "/"
#: The entry arrow's tail; no state path starts with the separator, so it cannot clash.
_START: Final = "/start"
_MERMAID_ID: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MERMAID_RESERVED: Final = frozenset(
    {"state", "note", "end", "direction", "class", "classDef", "style", "click", "as", "left", "right"}
)


# -- the declaration as transitions will draw it ------------------------------------


def _callable_name(fn: object) -> str:
    if isinstance(fn, functools.partial):
        return _callable_name(fn.func)
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


def _paths(lc: Lifecycle) -> dict[str, str]:
    """Each state and group name mapped to its ``/``-joined path."""
    paths = {leaf: _SEPARATOR.join((*lc.group_path(leaf), leaf)) for leaf in lc.states}
    for leaf in lc.states:
        enclosing = lc.group_path(leaf)
        for depth, group in enumerate(enclosing, 1):
            paths.setdefault(group, _SEPARATOR.join(enclosing[:depth]))
    return paths


def _drawable_states(decls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """State declarations without their hooks: names, nesting and finality are drawn."""
    out: list[dict[str, Any]] = []
    for decl in decls:
        state: dict[str, Any] = {"name": decl["name"]}
        if decl.get("final"):
            state["final"] = True
        if "children" in decl:
            state["children"] = _drawable_states(decl["children"])
        out.append(state)
    return out


def _drawable_transitions(lc: Lifecycle, paths: Mapping[str, str]) -> list[dict[str, Any]]:
    """Transitions keyed by path, guards replaced by their names, hooks dropped (not drawn)."""
    out: list[dict[str, Any]] = []
    for spec in lc.transitions:
        decl: dict[str, Any] = {
            "trigger": spec.trigger,
            "source": [paths[s] for s in spec.source],
            "dest": paths[spec.dest],
            "route": spec.route,
        }
        # Names, not the callables: transitions never calls them while drawing, and
        # its markup would otherwise name a partial by its repr.
        if spec.conditions:
            decl["conditions"] = [_callable_name(fn) for fn in spec.conditions]
        if spec.unless:
            decl["unless"] = [_callable_name(fn) for fn in spec.unless]
        out.append(decl)
    return out


@functools.cache
def _machine_class() -> type[Any]:
    """The `HierarchicalGraphMachine` subclass that draws lifecycles.

    Defined on first use: importing ``statesys.diagram`` then imports neither the
    optional ``graphviz`` package nor transitions' diagram extension (~60 ms).
    """
    try:
        import graphviz
    except ImportError:
        raise GraphvizNotFound("graphviz", "lifecycle diagrams in DOT, SVG or PNG") from None
    from transitions.extensions.diagrams import HierarchicalGraphMachine, NestedGraphTransition
    from transitions.extensions.diagrams_graphviz import NestedGraph
    from transitions.extensions.nesting import NestedState

    class _State(NestedState):
        separator = _SEPARATOR

    class _Transition(NestedGraphTransition):
        """Carries its route into transitions' markup, where the graph reads it."""

        def __init__(self, *args: Any, route: str = "normal", **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.route = route

    class _Graph(NestedGraph):
        def _convert_state_attributes(self, state: dict[str, str]) -> str:
            # The plain name, and never HTML even if it looks like it.
            return graphviz.nohtml(state.get("label", state["name"]))  # type: ignore[no-any-return]

        def _add_edges(self, transitions: list[dict[str, str]], container: Any) -> None:
            # transitions merges the labels of transitions between the same two states
            # into one edge; merge only within a route, so each edge has one colour.
            by_route: dict[str, list[dict[str, str]]] = {}
            for transition in transitions:
                by_route.setdefault(transition.get("route", ""), []).append(transition)
            for same_route in by_route.values():
                super()._add_edges(same_route, container)

        def _create_edge_attr(self, src: str, dst: str, transition: dict[str, str]) -> dict[str, Any]:
            attr = super()._create_edge_attr(src, dst, transition)
            colour = ROUTE_COLOURS.get(transition.get("route", ""))
            if colour:
                attr.update(color=colour, fontcolor=colour)
            return attr

    node_styles = dict(HierarchicalGraphMachine.style_attributes["node"])  # type: ignore[arg-type]
    node_styles.update(initial={"penwidth": "2"}, final={"peripheries": "2"})

    class _Machine(HierarchicalGraphMachine):
        state_cls = _State
        transition_cls = _Transition
        # Plain class attributes, as transitions declares them (a ClassVar would clash).
        transition_attributes = [*HierarchicalGraphMachine.transition_attributes, "route"]  # noqa: RUF012
        # compound: lets an edge start at a group's cluster border (ltail).
        machine_attributes = {  # noqa: RUF012
            **HierarchicalGraphMachine.machine_attributes,
            "compound": "true",
        }
        style_attributes = {**HierarchicalGraphMachine.style_attributes, "node": node_styles}  # noqa: RUF012

        def _init_graphviz_engine(self, graph_engine: str) -> type[Any]:
            return _Graph

    return _Machine


def lifecycle_graph(
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE, *, title: str | None = None
) -> graphviz.Digraph:
    """The lifecycle as a ``graphviz.Digraph`` drawn by transitions, ready to restyle or render."""
    machine_class = _machine_class()
    paths = _paths(lifecycle)
    machine = machine_class(
        model=None,
        states=_drawable_states(lifecycle.declaration()[0]),
        transitions=_drawable_transitions(lifecycle, paths),
        initial=paths[lifecycle.initial],
        auto_transitions=False,
        show_conditions=True,
        title=title or lifecycle.name,
        graph_engine="graphviz",
    )
    drawing = machine.graph_cls(machine)
    drawing.set_node_style(paths[lifecycle.initial], "initial")
    for state in lifecycle.states:  # declaration order, for stable output
        if state in lifecycle.final_states:
            drawing.set_node_style(paths[state], "final")
    graph = drawing.get_graph(title=machine.title)
    for group in lifecycle.groups:
        # transitions' cluster anchors stay as the tails of group edges, unseen.
        graph.node(paths[group], label="", style="invis", width="0", height="0")
    graph.node(
        _START, label="", shape="point", style="filled", fillcolor="black", width="0.2", tooltip="initial"
    )
    graph.edge(_START, paths[lifecycle.initial], color="black")
    legend = "  ".join(
        f'<font color="{ROUTE_COLOURS[route]}">{route}</font>' for route in ROUTES
    )
    graph.graph_attr["label"] = f"<{html.escape(machine.title)}<br/>{legend}>"
    return graph


def lifecycle_dot(lifecycle: Lifecycle = DEFAULT_LIFECYCLE) -> str:
    """DOT source of the lifecycle diagram (needs the Python ``graphviz`` package, not ``dot``)."""
    return str(lifecycle_graph(lifecycle).source)


# -- Mermaid ---------------------------------------------------------------------------


def lifecycle_mermaid(lifecycle: Lifecycle = DEFAULT_LIFECYCLE) -> str:
    """Mermaid ``stateDiagram-v2`` text: groups as composite states, one line per transition."""
    ids: dict[str, str] = {}
    lines = ["---", f"title: {json.dumps(lifecycle.name)}", "---", "stateDiagram-v2"]

    def ident(name: str) -> str:
        if name not in ids:
            if _MERMAID_ID.match(name) and name not in _MERMAID_RESERVED:
                ids[name] = name
            else:
                ids[name] = f"s{len(ids)}"
                lines.append(f'    state "{_mermaid_text(name)}" as {ids[name]}')
        return ids[name]

    def walk(decls: Sequence[Mapping[str, Any]], depth: int) -> None:
        pad = "    " * depth
        for decl in decls:
            name = ident(decl["name"])
            if "children" in decl:
                lines.append(f"{pad}state {name} {{")
                walk(decl["children"], depth + 1)
                lines.append(f"{pad}}}")
            else:
                lines.append(f"{pad}{name}")

    states, _ = lifecycle.declaration()
    for decl in _all_names(states):  # aliases first, at top level
        ident(decl)
    walk(states, 1)
    lines.append(f"    [*] --> {ids[lifecycle.initial]}")
    for spec in lifecycle.transitions:
        label = _mermaid_text(_guarded_label(spec.trigger, spec.conditions, spec.unless))
        for src in spec.source:
            lines.append(f"    {ids[src]} --> {ids[spec.dest]} : {label}")
    for state in lifecycle.states:
        if state in lifecycle.final_states:
            lines.append(f"    {ids[state]} --> [*]")
    return "\n".join(lines) + "\n"


def _all_names(decls: Sequence[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for decl in decls:
        names.append(decl["name"])
        names.extend(_all_names(decl.get("children", ())))
    return names


def _guarded_label(
    trigger: str, conditions: Sequence[Callable[..., Any]], unless: Sequence[Callable[..., Any]]
) -> str:
    """``trigger [a & !b]``, as transitions labels guarded edges."""
    guards = [_callable_name(fn) for fn in conditions] + ["!" + _callable_name(fn) for fn in unless]
    return f"{trigger} [{' & '.join(guards)}]" if guards else trigger


def _mermaid_text(text: str) -> str:
    return text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


# -- one entry point per format -----------------------------------------------------


@overload
def lifecycle(lifecycle: Lifecycle = ..., format: Literal["gv", "svg", "mmd"] = ...) -> str: ...
@overload
def lifecycle(lifecycle: Lifecycle, format: Literal["png"]) -> bytes: ...
@overload
def lifecycle(lifecycle: Lifecycle = ..., *, format: Literal["png"]) -> bytes: ...
@overload
def lifecycle(lifecycle: Lifecycle = ..., format: str = ...) -> str | bytes: ...
def lifecycle(lifecycle: Lifecycle = DEFAULT_LIFECYCLE, format: str = "gv") -> str | bytes:
    """The lifecycle diagram in `format`: ``gv`` (DOT), ``svg``, ``png`` (bytes) or ``mmd``."""
    fmt: Format = check_format(format)
    if fmt == "mmd":
        return lifecycle_mermaid(lifecycle)
    source = lifecycle_dot(lifecycle)
    if fmt == "gv":
        return source
    if fmt == "svg":
        return render(source, "svg").decode("utf-8")
    return render(source, "png")
