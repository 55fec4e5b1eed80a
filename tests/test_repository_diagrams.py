"""diagrams/ at the repository root holds what the declarations generate today."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from statesys._demo import build_app
from statesys.diagram import lifecycle_dot, lifecycle_mermaid, tree_dot

ROOT = Path(__file__).resolve().parent.parent
FIX = "regenerate them from the repository root with: python -m statesys._repo_diagrams"


@pytest.mark.parametrize(
    ("name", "fresh"),
    [
        ("lifecycle.gv", lambda: lifecycle_dot()),
        ("lifecycle.mmd", lambda: lifecycle_mermaid()),
        ("demo-tree.gv", lambda: tree_dot(build_app())),
    ],
)
def test_committed_diagrams_are_fresh(name: str, fresh: object) -> None:
    path = ROOT / "diagrams" / name
    assert path.exists(), f"diagrams/{name} is missing; {FIX}"
    assert callable(fresh)
    assert path.read_text() == fresh(), f"diagrams/{name} is stale; {FIX}"


@pytest.mark.parametrize("name", ["lifecycle.svg", "demo-tree.svg"])
def test_committed_svgs_parse_and_name_every_state(name: str) -> None:
    root = ET.parse(ROOT / "diagrams" / name).getroot()
    text = " ".join(t for t in root.itertext())
    states = ["initial", "ready", "running", "disabled", "intermitted", "completed", "terminated"]
    wanted = states if name.startswith("lifecycle") else ["appSystem", "sleepSystem1", "sleepSystem2"]
    assert all(s in text for s in wanted)
