"""Lifecycle diagrams: structure of the DOT, SVG and PNG output, and the Mermaid text."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from statesys._lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from statesys.diagram import (
    ROUTE_COLOURS,
    UnknownFormat,
    lifecycle,
    lifecycle_dot,
    lifecycle_graph,
    lifecycle_mermaid,
)

from . import user_lifecycle

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
LIFECYCLES = pytest.mark.parametrize("lc", [DEFAULT_LIFECYCLE, user_lifecycle()], ids=["default", "user"])

_ID = r'"(?:[^"\\]|\\.)*"|[A-Za-z_0-9]+'
_EDGE = re.compile(rf"^\s*({_ID}) -> ({_ID}) \[(.*)\]$", re.M)
_NODE = re.compile(rf"^\s*({_ID}) \[(.*)\]$", re.M)
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|<.*>(?= \w+=|$)|[^\s\]]+)')
_MERMAID_EDGE = re.compile(r"^\s*(\S+) --> (\S+) : (\w+)(?: \[(.*)\])?$", re.M)


def _unquote(text: str) -> str:
    return text[1:-1].replace('\\"', '"') if text.startswith('"') else text


def attrs(text: str) -> dict[str, str]:
    return {key: _unquote(value) for key, value in _ATTR.findall(text)}


def edges(dot: str) -> list[tuple[str, str, dict[str, str]]]:
    return [(_unquote(src), _unquote(dst), attrs(rest)) for src, dst, rest in _EDGE.findall(dot)]


def nodes(dot: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for name, rest in _NODE.findall(dot):
        found.setdefault(_unquote(name), {}).update(attrs(rest))
    return found


def label(edge_attrs: dict[str, str]) -> str:
    return edge_attrs.get("label") or edge_attrs.get("headlabel") or edge_attrs.get("taillabel") or ""


def path(lc: Lifecycle, state: str) -> str:
    return "/".join((*lc.group_path(state), state))


def triggers_on(edge_label: str) -> list[str]:
    return [part.split(" [")[0] for part in edge_label.split(" | ")]


@LIFECYCLES
def test_every_state_is_a_node_labelled_with_its_plain_name(lc: Lifecycle) -> None:
    found = nodes(lifecycle_dot(lc))
    for state in lc.states:
        assert found[path(lc, state)]["label"] == state


@LIFECYCLES
def test_every_group_is_a_labelled_cluster(lc: Lifecycle) -> None:
    dot = lifecycle_dot(lc)
    for group, leaves in lc.groups.items():
        enclosing = lc.group_path(leaves[0])
        cluster = "/".join(enclosing[: enclosing.index(group) + 1])
        match = re.search(
            rf'subgraph "?cluster_{re.escape(cluster)}"? {{\n\s*graph \[(.*)\]', dot
        )
        assert match, f"no cluster for {group}"
        assert attrs(match.group(1))["label"] == group


@LIFECYCLES
def test_every_trigger_is_on_an_edge_coloured_by_its_route(lc: Lifecycle) -> None:
    routes = {spec.trigger: spec.route for spec in lc.transitions}
    drawn: set[str] = set()
    for _, _, edge in edges(lifecycle_dot(lc)):
        for trigger in triggers_on(label(edge)):
            if trigger:
                drawn.add(trigger)
                assert edge["color"] == ROUTE_COLOURS[routes[trigger]], trigger
    assert drawn == set(lc.triggers)
    assert set(ROUTE_COLOURS) == {"normal", "failure", "human"}


def test_default_routes_have_the_designed_colours() -> None:
    colour = {
        trigger: edge["color"]
        for _, _, edge in edges(lifecycle_dot())
        for trigger in triggers_on(label(edge))
    }
    assert {t: colour[t] for t in ("activate", "start", "complete")} == dict.fromkeys(
        ("activate", "start", "complete"), "blue"
    )
    assert colour["disable"] == colour["terminate"] == "red"
    assert {colour[t] for t in ("enable", "suspend", "resume")} == {ROUTE_COLOURS["human"]}
    assert "green" in ROUTE_COLOURS["human"]


@LIFECYCLES
def test_terminate_is_drawn_once_from_the_open_cluster(lc: Lifecycle) -> None:
    drawn = edges(lifecycle_dot(lc))
    terminate = [(src, dst, e) for src, dst, e in drawn if "terminate" in triggers_on(label(e))]
    assert len(terminate) == 1
    src, dst, edge = terminate[0]
    assert (src, dst) == ("open", "closed/terminated")
    assert edge["ltail"] == "cluster_open"
    assert "compound=true" in lifecycle_dot(lc)


def test_guards_are_named_on_their_edges() -> None:
    def is_busy(model: Any, **kw: Any) -> bool:
        return False

    lc = user_lifecycle().with_guard("resume", unless=[is_busy])
    labels = {triggers_on(label(e))[0]: label(e) for _, _, e in edges(lifecycle_dot(lc))}
    assert labels["start"] == "start [gpu_free]"
    assert labels["resume"] == "resume [!is_busy]"
    assert labels["activate"] == "activate"


def test_initial_has_an_entry_arrow_and_final_states_a_double_border() -> None:
    lc = user_lifecycle()
    dot = lifecycle_dot(lc)
    found = nodes(dot)
    assert ("/start", path(lc, "initial")) in {(s, d) for s, d, _ in edges(dot)}
    assert found[path(lc, "initial")]["penwidth"] == "2"
    for state in lc.states:
        expected = "2" if state in lc.final_states else "1"
        assert found[path(lc, state)]["peripheries"] == expected, state
    # transitions' cluster anchors are kept (group edges start there) but not shown
    for group in ("open", "closed"):
        assert found[group]["style"] == "invis"


def test_the_user_lifecycle_draws_its_added_state_and_transitions() -> None:
    lc = user_lifecycle()
    dot = lifecycle_dot(lc)
    pairs = {(src, dst, triggers_on(label(e))[0]) for src, dst, e in edges(dot)}
    assert ("open/running", "open/draining", "drain") in pairs
    assert ("open/draining", "closed/completed", "complete") in pairs
    assert ("open/running", "closed/completed", "complete") in pairs


def test_odd_state_names_are_labels_not_markup() -> None:
    lc = Lifecycle(
        [{"name": "<b>", "children": ["not started"]}, {"name": "done", "final": True}],
        [{"trigger": "finish", "source": "not started", "dest": "done"}],
        initial="not started",
        name="odd",
    )
    dot = lifecycle_dot(lc)
    assert nodes(dot)["<b>/not started"]["label"] == "not started"
    assert 'label="<b>"' in dot
    mermaid = lifecycle_mermaid(lc)
    aliases = dict(re.findall(r'state "([^"]*)" as (\w+)', mermaid))
    assert set(aliases) == {"#lt;b#gt;", "not started"}
    assert f"{aliases['not started']} --> done : finish" in mermaid


def test_the_graph_is_a_graphviz_digraph_to_restyle() -> None:
    graphviz = pytest.importorskip("graphviz")
    graph = lifecycle_graph(DEFAULT_LIFECYCLE, title="custom")
    assert isinstance(graph, graphviz.Digraph)
    assert "custom" in graph.graph_attr["label"]


@LIFECYCLES
def test_output_is_deterministic(lc: Lifecycle) -> None:
    assert lifecycle_dot(lc) == lifecycle_dot(lc) == lifecycle(lc, "gv")
    assert lifecycle_mermaid(lc) == lifecycle_mermaid(lc) == lifecycle(lc, "mmd")


@needs_dot
@LIFECYCLES
def test_svg_is_xml_naming_every_state(lc: Lifecycle) -> None:
    svg = lifecycle(lc, "svg")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    texts = {el.text for el in root.iter() if el.tag.endswith("text")}
    assert set(lc.states) <= texts
    assert set(lc.groups) <= texts
    assert set(lc.triggers) <= {t.split(" [")[0] for t in texts if t}


@needs_dot
def test_png_is_a_png() -> None:
    png = lifecycle(user_lifecycle(), "png")
    assert isinstance(png, bytes)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


@LIFECYCLES
def test_mermaid_has_one_line_per_transition(lc: Lifecycle) -> None:
    text = lifecycle_mermaid(lc)
    assert text.splitlines()[3] == "stateDiagram-v2"
    drawn = {(src, dst, trigger) for src, dst, trigger, _ in _MERMAID_EDGE.findall(text)}
    expected = {(src, spec.dest, spec.trigger) for spec in lc.transitions for src in spec.source}
    assert drawn == expected
    assert len(_MERMAID_EDGE.findall(text)) == len(expected)  # terminate from open: once
    for group in lc.groups:
        assert re.search(rf"^\s*state {group} {{$", text, re.M), group
    assert f"[*] --> {lc.initial}" in text
    for state in lc.final_states:
        assert f"{state} --> [*]" in text


def test_mermaid_shows_guards() -> None:
    guards = {
        trigger: guard for _, _, trigger, guard in _MERMAID_EDGE.findall(lifecycle_mermaid(user_lifecycle()))
    }
    assert guards["start"] == "gpu_free"
    assert guards["activate"] == ""


def test_unknown_format_says_what_is_known() -> None:
    with pytest.raises(UnknownFormat, match="expected one of gv, svg, png, mmd") as caught:
        lifecycle(DEFAULT_LIFECYCLE, "jpeg")
    assert isinstance(caught.value, ValueError)
    assert caught.value.given == "jpeg"
