"""Lifecycle and system-tree diagrams: DOT, SVG, PNG and Mermaid.

Lifecycles are drawn by `transitions`' Graphviz support from their declaration
(``lifecycle_dot`` needs the ``diagrams`` extra, the Python ``graphviz`` package);
trees and all Mermaid text need nothing optional; SVG and PNG need Graphviz's ``dot``
program and raise `GraphvizNotFound`, naming the fix, without it.
"""

from ._cli import write_repository_diagrams
from ._lifecycle import ROUTE_COLOURS, lifecycle, lifecycle_dot, lifecycle_graph, lifecycle_mermaid
from ._render import FORMATS, Format, GraphvizError, GraphvizNotFound, UnknownFormat, render
from ._tree import STATE_COLOURS, LiveTreeDiagram, SystemLike, state_colours, tree, tree_dot, tree_mermaid

__all__ = [
    "FORMATS",
    "ROUTE_COLOURS",
    "STATE_COLOURS",
    "Format",
    "GraphvizError",
    "GraphvizNotFound",
    "LiveTreeDiagram",
    "SystemLike",
    "UnknownFormat",
    "lifecycle",
    "lifecycle_dot",
    "lifecycle_graph",
    "lifecycle_mermaid",
    "render",
    "state_colours",
    "tree",
    "tree_dot",
    "tree_mermaid",
    "write_repository_diagrams",
]
