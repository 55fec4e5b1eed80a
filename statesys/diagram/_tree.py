"""System-tree diagrams: every system of a tree, nested as the tree is, coloured by its state.

transitions draws machines, not trees of them, so the tree's DOT is built here as text:
one pass over the tree, one line per system, no optional dependency (1,000 systems
take a few milliseconds).  A system with subsystems becomes a cluster, bordered in
its state's colour, holding its own node and its subsystems; edges join each system
to its subsystems.  A legend lists every state of the lifecycles in the tree with its
colour and how many systems are in it.
"""

from __future__ import annotations

import colorsys
import html
import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, NamedTuple, Protocol, overload

from .._lifecycle import Lifecycle
from ._render import RENDERED, Format, check_format, find_dot, format_for_path, render, write_atomic

__all__ = [
    "STATE_COLOURS",
    "LiveTreeDiagram",
    "SystemLike",
    "state_colours",
    "tree",
    "tree_dot",
    "tree_mermaid",
]

#: Fill colour of each state of the default lifecycle; other states get colours of their own.
STATE_COLOURS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "initial": "#eeeeee",
        "ready": "#b3e5fc",
        "running": "#81c784",
        "disabled": "#ffb74d",
        "intermitted": "#fff176",
        "completed": "#b39ddb",
        "terminated": "#e57373",
    }
)
_GOLDEN: Final = 0.618033988749895
_CAUSE_WIDTH: Final = 40


class SystemLike(Protocol):
    """What a tree diagram reads from a system (``statesys.System`` provides it).

    The lifecycle is read from the class: ``type(system).lifecycle``.
    """

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def subsystems(self) -> Sequence[SystemLike]: ...
    @property
    def cause(self) -> str | None: ...


class _Entry(NamedTuple):
    """One system as seen once: states are read a single time per drawing."""

    depth: int
    parent: int
    name: str
    path: str
    state: str
    cause: str | None
    has_children: bool


class _Snapshot(NamedTuple):
    entries: list[_Entry]
    colours: dict[str, str]
    counts: dict[str, int]


def state_colours(states: Sequence[str]) -> dict[str, str]:
    """A distinct fill colour for each state: the default lifecycle's own, then generated ones."""
    colours: dict[str, str] = {}
    extra = 0
    for state in states:
        if state in colours:
            continue
        if state in STATE_COLOURS:
            colours[state] = STATE_COLOURS[state]
        else:
            # Golden-ratio steps around the hue circle keep successive colours apart.
            hue = (0.1 + extra * _GOLDEN) % 1.0
            extra += 1
            red, green, blue = colorsys.hls_to_rgb(hue, 0.78, 0.65)
            colours[state] = f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
    return colours


def _snapshot(root: SystemLike) -> _Snapshot:
    """The tree in preorder, with the colour of each state of its lifecycles."""
    entries: list[_Entry] = []
    legend: dict[str, None] = {}  # ordered set: lifecycle states, then any stray state
    seen_lifecycles: set[int] = set()
    seen_systems: set[int] = set()
    counts: dict[str, int] = {}
    # An explicit stack, not recursion: a deep chain of systems must not hit the limit.
    stack: list[tuple[SystemLike, int, int]] = [(root, 0, -1)]
    while stack:
        system, depth, parent = stack.pop()
        if id(system) in seen_systems:  # a system listed twice is drawn once
            continue
        seen_systems.add(id(system))
        lifecycle = getattr(type(system), "lifecycle", None)
        if isinstance(lifecycle, Lifecycle) and id(lifecycle) not in seen_lifecycles:
            seen_lifecycles.add(id(lifecycle))
            legend.update(dict.fromkeys(lifecycle.states))
        state = str(system.state)
        legend.setdefault(state)
        counts[state] = counts.get(state, 0) + 1
        children = tuple(system.subsystems)
        entries.append(
            _Entry(depth, parent, str(system.name), str(system.path), state, system.cause, bool(children))
        )
        me = len(entries) - 1
        stack.extend((child, depth + 1, me) for child in reversed(children))
    return _Snapshot(entries, state_colours(list(legend)), counts)


def _dot_string(text: str) -> str:
    """A DOT double-quoted string showing `text` literally."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _CAUSE_WIDTH else text[: _CAUSE_WIDTH - 1] + "…"


def tree_dot(system: SystemLike) -> str:
    """DOT source of the tree under `system`, every system filled with its state's colour."""
    snap = _snapshot(system)
    root = snap.entries[0]
    out = [
        "digraph tree {",
        f"\tgraph [fontname=Helvetica label={_dot_string(root.path)} labelloc=t rankdir=TB]",
        '\tnode [fontname=Helvetica shape=box style="rounded,filled"]',
        "\tedge [arrowhead=none color=gray50]",
    ]
    open_depths: list[int] = []
    edges: list[str] = []
    for index, entry in enumerate(snap.entries):
        while open_depths and open_depths[-1] >= entry.depth:
            open_depths.pop()
            out.append("\t" * (len(open_depths) + 1) + "}")
        pad = "\t" * (len(open_depths) + 1)
        colour = snap.colours[entry.state]
        if entry.has_children:
            out.append(f"{pad}subgraph cluster_n{index} {{")
            # A translucent wash of the state's colour: nested clusters stay readable.
            out.append(f'{pad}\tgraph [color=gray40 fillcolor="{colour}40" label="" style="rounded,filled"]')
            open_depths.append(entry.depth)
            pad += "\t"
        label = f"{entry.name}\n{entry.state}"
        tooltip = f"{entry.path}: {entry.state}"
        if entry.cause:
            label += "\n" + _short(entry.cause)
            tooltip += f" ({entry.cause})"
        out.append(
            f'{pad}n{index} [label={_dot_string(label)} fillcolor="{colour}" tooltip={_dot_string(tooltip)}]'
        )
        if entry.parent >= 0:
            edges.append(f"\tn{entry.parent} -> n{index}")
    while open_depths:
        open_depths.pop()
        out.append("\t" * (len(open_depths) + 1) + "}")
    out.extend(edges)
    # The legend is one node holding a table, so that it adds no ranks to the layout.
    rows = "".join(
        f'<tr><td bgcolor="{colour}" align="left">{html.escape(state)}</td>'
        f'<td align="right">{snap.counts.get(state, 0)}</td></tr>'
        for state, colour in snap.colours.items()
    )
    out.append(
        '\tlegend [label=<<table border="0" cellborder="1" cellspacing="0" cellpadding="4">'
        f'<tr><td colspan="2"><b>states</b></td></tr>{rows}</table>> shape=plain style=""]'
    )
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def tree_mermaid(system: SystemLike) -> str:
    """Mermaid ``flowchart`` text of the tree: subgraphs for systems with subsystems, a class per state."""
    snap = _snapshot(system)
    out = ["---", f"title: {json.dumps(snap.entries[0].path)}", "---", "flowchart TB"]
    open_depths: list[int] = []
    edges: list[str] = []
    styles: list[str] = []
    members: dict[str, list[str]] = {state: [] for state in snap.colours}
    for index, entry in enumerate(snap.entries):
        while open_depths and open_depths[-1] >= entry.depth:
            open_depths.pop()
            out.append("    " * (len(open_depths) + 1) + "end")
        pad = "    " * (len(open_depths) + 1)
        if entry.has_children:
            out.append(f'{pad}subgraph c{index} ["{_mermaid_text(entry.name)}"]')
            styles.append(f"    style c{index} fill:{snap.colours[entry.state]}40,stroke:#666")
            open_depths.append(entry.depth)
            pad += "    "
        label = f"{_mermaid_text(entry.name)}<br/>{_mermaid_text(entry.state)}"
        if entry.cause:
            label += "<br/>" + _mermaid_text(_short(entry.cause))
        out.append(f'{pad}n{index}["{label}"]')
        members[entry.state].append(f"n{index}")
        if entry.parent >= 0:
            edges.append(f"    n{entry.parent} --- n{index}")
    while open_depths:
        open_depths.pop()
        out.append("    " * (len(open_depths) + 1) + "end")
    out.extend(edges)
    out.append('    subgraph legend ["states"]')
    for number, state in enumerate(snap.colours):
        out.append(f'        legend{number}["{_mermaid_text(state)}: {snap.counts.get(state, 0)}"]')
        members[state].append(f"legend{number}")
    out.append("    end")
    out.extend(styles)
    for number, (state, colour) in enumerate(snap.colours.items()):
        out.append(f"    classDef state{number} fill:{colour},stroke:#333,color:#000")
        out.append(f"    class {','.join(members[state])} state{number}")
    return "\n".join(out) + "\n"


@overload
def tree(system: SystemLike, format: Literal["gv", "svg", "mmd"] = ...) -> str: ...
@overload
def tree(system: SystemLike, format: Literal["png"]) -> bytes: ...
@overload
def tree(system: SystemLike, format: str = ...) -> str | bytes: ...
def tree(system: SystemLike, format: str = "gv") -> str | bytes:
    """A snapshot of the tree in `format`: ``gv`` (DOT), ``svg``, ``png`` (bytes) or ``mmd``."""
    fmt: Format = check_format(format)
    if fmt == "mmd":
        return tree_mermaid(system)
    source = tree_dot(system)
    if fmt == "gv":
        return source
    if fmt == "svg":
        return render(source, "svg").decode("utf-8")
    return render(source, "png")


class LiveTreeDiagram:
    """Keeps a diagram file of a running tree current; the runtime calls `update()` after events.

    The format comes from the file suffix (``.gv``, ``.svg``, ``.png``, ``.mmd``) unless
    given.  Each update replaces the file atomically (readers never see half a file),
    and is skipped when the drawing did not change, so calling it after every event
    costs one DOT build.
    """

    def __init__(
        self, system: SystemLike, path: str | os.PathLike[str], *, format: str | None = None
    ) -> None:
        self.system = system
        self.path = Path(path)
        self.format: Format = check_format(format) if format is not None else format_for_path(self.path)
        if self.format in RENDERED:
            find_dot(f"live {self.format.upper()} tree diagrams")  # fail now, not at the first event
        self._lock = threading.Lock()
        self._last: str | None = None

    def update(self) -> bool:
        """Redraw the tree and replace the file; False when nothing changed since the last write."""
        source = tree_mermaid(self.system) if self.format == "mmd" else tree_dot(self.system)
        with self._lock:
            if source == self._last and self.path.exists():
                return False
            if self.format == "svg" or self.format == "png":
                write_atomic(self.path, render(source, self.format))
            else:
                write_atomic(self.path, source)
            self._last = source
            return True

    def __repr__(self) -> str:
        return f"<LiveTreeDiagram {self.system.path} -> {self.path} ({self.format})>"
