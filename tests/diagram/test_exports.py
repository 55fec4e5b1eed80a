"""The public namespace, and that Graphviz stays optional."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import statesys.diagram

ROOT = Path(__file__).resolve().parents[2]


def test_public_names_are_pinned() -> None:
    assert statesys.diagram.__all__ == [
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
    for name in statesys.diagram.__all__:
        assert hasattr(statesys.diagram, name), name


def _python(code: str) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_importing_loads_no_graphviz_and_no_diagram_extension() -> None:
    _python(
        """
        import sys
        import statesys.diagram
        assert "graphviz" not in sys.modules
        assert "transitions.extensions.diagrams" not in sys.modules
        """
    )


def test_works_without_the_graphviz_package() -> None:
    _python(
        """
        import sys
        sys.modules["graphviz"] = None  # as if not installed
        import statesys.diagram as d
        from tests.diagram import small_tree
        assert "stateDiagram-v2" in d.lifecycle_mermaid()
        assert d.tree_dot(small_tree()).startswith("digraph")
        assert "flowchart" in d.tree_mermaid(small_tree())
        try:
            d.lifecycle_dot()
        except d.GraphvizNotFound as error:
            assert error.missing == "graphviz"
            assert "pip install 'statesys[diagrams]'" in str(error)
        else:
            raise AssertionError("lifecycle_dot worked without graphviz")
        """
    )
