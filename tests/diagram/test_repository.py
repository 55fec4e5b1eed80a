"""``diagrams/``: generated deterministically, unchanged files left alone."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from statesys._lifecycle import DEFAULT_LIFECYCLE
from statesys.diagram import lifecycle_dot, lifecycle_mermaid, write_repository_diagrams

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")


def test_two_generations_are_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    written = write_repository_diagrams(first)
    write_repository_diagrams(second)
    names = [p.name for p in written]
    assert names[:3] == ["lifecycle.gv", "lifecycle.svg", "lifecycle.mmd"]
    for path in written:
        assert path.parent == first / "diagrams"
        assert path.read_bytes() == (second / "diagrams" / path.name).read_bytes(), path.name
    assert (first / "diagrams" / "lifecycle.gv").read_text() == lifecycle_dot(DEFAULT_LIFECYCLE)
    assert (first / "diagrams" / "lifecycle.mmd").read_text() == lifecycle_mermaid(DEFAULT_LIFECYCLE)
    if importlib.util.find_spec("statesys._demo") is not None:
        assert names[3:] == ["demo-tree.gv", "demo-tree.svg"]


def test_unchanged_files_are_not_rewritten(tmp_path: Path) -> None:
    written = write_repository_diagrams(tmp_path)
    inodes = {p: p.stat().st_ino for p in written}
    stale = tmp_path / "diagrams" / "lifecycle.mmd"
    stale.write_text("stale")
    write_repository_diagrams(tmp_path)
    assert stale.read_text() == lifecycle_mermaid(DEFAULT_LIFECYCLE)
    for path, inode in inodes.items():
        if path != stale:
            assert path.stat().st_ino == inode, path.name


def test_without_the_demo_the_tree_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "statesys._demo" else real(name, *a)
    )
    names = [p.name for p in write_repository_diagrams(tmp_path)]
    assert names == ["lifecycle.gv", "lifecycle.svg", "lifecycle.mmd"]
