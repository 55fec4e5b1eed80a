"""System-tree diagrams: colours follow live states, nesting follows the tree."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from statesys.diagram import (
    STATE_COLOURS,
    GraphvizNotFound,
    LiveTreeDiagram,
    UnknownFormat,
    state_colours,
    tree,
    tree_dot,
    tree_mermaid,
)

from . import FakeSystem, small_tree, wide_tree

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_NODE = re.compile(rf"^\s*(n\d+) \[label={_QUOTED} fillcolor=\"(#\w+)\" tooltip={_QUOTED}\]$", re.M)


def fills(dot: str) -> dict[str, str]:
    """Each system's path and the fill colour of its node."""
    return {tooltip.split(": ")[0]: colour for _, _, colour, tooltip in _NODE.findall(dot)}


def test_every_system_is_filled_with_its_state_colour() -> None:
    root = small_tree()
    colours = fills(tree_dot(root))
    systems = root.walk()
    assert set(colours) == {s.path for s in systems}
    for system in systems:
        if system.state in STATE_COLOURS:
            assert colours[system.path] == STATE_COLOURS[system.state], system.path
    # a state of a user lifecycle gets a colour of its own
    assert colours["app/logger"] not in STATE_COLOURS.values()


def test_colours_follow_live_states() -> None:
    root = small_tree()
    worker = root.subsystems[0].subsystems[1]
    assert fills(tree_dot(root))[worker.path] == STATE_COLOURS["terminated"]
    worker.state = "running"
    assert fills(tree_dot(root))[worker.path] == STATE_COLOURS["running"]


def test_one_colour_per_state() -> None:
    colours = state_colours(["initial", "a", "b", "c", "running", "a"])
    assert list(colours) == ["initial", "a", "b", "c", "running"]
    assert len(set(colours.values())) == len(colours)
    assert colours["initial"] == STATE_COLOURS["initial"]


def test_systems_with_subsystems_are_nested_clusters() -> None:
    dot = tree_dot(small_tree())
    depth = 0
    cluster_depth: dict[str, int] = {}
    node_depth: dict[str, int] = {}
    for line in dot.splitlines():
        if match := re.match(r"\s*subgraph cluster_(n\d+) {", line):
            depth += 1
            cluster_depth[match.group(1)] = depth
        elif line.strip() == "}":
            depth -= 1
        elif match := _NODE.match(line):
            node_depth[match.group(4).split(": ")[0]] = depth
    assert set(cluster_depth) == {"n0", "n1"}  # app and trainer have subsystems
    assert node_depth == {
        "app": 1,
        "app/trainer": 2,
        "app/trainer/loader": 2,
        "app/trainer/worker": 2,
        "app/logger": 1,
        "app/monitor": 1,
    }
    edges = set(re.findall(r"^\s*(n\d+) -> (n\d+)$", dot, re.M))
    assert len(edges) == 5


def test_legend_lists_every_state_with_its_colour_and_count() -> None:
    dot = tree_dot(small_tree())
    rows = re.findall(r'<td bgcolor="(#\w+)" align="left">(\w+)</td><td align="right">(\d+)</td>', dot)
    legend = {state: (colour, int(count)) for colour, state, count in rows}
    expected_states = [
        "initial", "ready", "disabled", "intermitted", "running", "completed", "terminated", "draining",
    ]
    assert list(legend) == expected_states
    assert legend["running"] == (STATE_COLOURS["running"], 2)
    assert legend["draining"][1] == 1
    assert legend["ready"][1] == 0


def test_cause_is_shown_and_escaped() -> None:
    dot = tree_dot(small_tree())
    assert r'worker\nterminated\nOOM: \"killed\" by <kernel>' in dot
    mermaid = tree_mermaid(small_tree())
    assert "OOM: #quot;killed#quot; by #lt;kernel#gt;" in mermaid


def test_mermaid_classes_follow_states() -> None:
    root = small_tree()
    text = tree_mermaid(root)
    assert text.splitlines()[3] == "flowchart TB"
    ids = {name: node for node, name in re.findall(r'(n\d+)\["(\w+)<br/>', text)}
    assert set(ids) == {s.name for s in root.walk()}
    classes = {}
    for number, colour in re.findall(r"classDef state(\d+) fill:(#\w+)", text):
        members = re.search(rf"class ([\w,]+) state{number}$", text, re.M)
        assert members
        for node in members.group(1).split(","):
            classes[node] = colour
    for system in root.walk():
        if system.state in STATE_COLOURS:
            assert classes[ids[system.name]] == STATE_COLOURS[system.state]
    assert re.findall(r"subgraph (c\d+) ", text) == ["c0", "c1"]


def test_a_thousand_systems_and_a_deep_chain() -> None:
    big = wide_tree(1000)
    assert len(fills(tree_dot(big))) == 1000
    chain = FakeSystem("s0")
    top = chain
    for i in range(1, 3000):  # deeper than the recursion limit
        nxt = FakeSystem(f"s{i}")
        chain.subsystems = (nxt,)
        chain = nxt
    assert tree_dot(top).count("subgraph cluster_") == 2999


def test_a_system_listed_twice_is_drawn_once() -> None:
    shared = FakeSystem("shared", "ready")
    root = FakeSystem("root", "running", (shared, shared))
    assert len(fills(tree_dot(root))) == 2


def test_formats() -> None:
    root = small_tree()
    assert tree(root) == tree(root, "gv") == tree_dot(root)
    assert tree(root, "mmd") == tree_mermaid(root)
    with pytest.raises(UnknownFormat):
        tree(root, "pdf")


@needs_dot
def test_svg_and_png() -> None:
    root = small_tree()
    svg = tree(root, "svg")
    texts = {el.text for el in ET.fromstring(svg).iter() if el.tag.endswith("text")}
    assert {s.name for s in root.walk()} <= texts
    assert tree(root, "png").startswith(b"\x89PNG\r\n\x1a\n")


def test_live_diagram_rewrites_only_on_change(tmp_path: Path) -> None:
    root = small_tree()
    target = tmp_path / "tree.gv"
    live = LiveTreeDiagram(root, target)
    assert live.format == "gv"
    assert live.update() is True
    assert target.read_text() == tree_dot(root)
    inode = target.stat().st_ino
    assert live.update() is False
    assert target.stat().st_ino == inode
    root.subsystems[2].state = "running"
    assert live.update() is True
    assert target.read_text() == tree_dot(root)
    assert [p.name for p in tmp_path.iterdir()] == ["tree.gv"]  # no temporary file left
    target.unlink()
    assert live.update() is True  # a deleted file is written again


def test_live_mermaid(tmp_path: Path) -> None:
    root = small_tree()
    live = LiveTreeDiagram(root, tmp_path / "tree.txt", format="mmd")
    live.update()
    assert (tmp_path / "tree.txt").read_text() == tree_mermaid(root)


@needs_dot
def test_live_svg(tmp_path: Path) -> None:
    root = small_tree()
    live = LiveTreeDiagram(root, tmp_path / "tree.svg")
    live.update()
    ET.parse(tmp_path / "tree.svg")


def test_live_diagram_checks_format_and_dot_up_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownFormat, match=r"'\.jpeg'"):
        LiveTreeDiagram(small_tree(), tmp_path / "tree.jpeg")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(GraphvizNotFound, match="apt-get install graphviz"):
        LiveTreeDiagram(small_tree(), tmp_path / "tree.svg")
    LiveTreeDiagram(small_tree(), tmp_path / "tree.gv").update()  # DOT needs no Graphviz
