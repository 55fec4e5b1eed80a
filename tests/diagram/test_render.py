"""Rendering with Graphviz's dot, its absence, and atomic file writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from statesys.diagram import GraphvizError, GraphvizNotFound, UnknownFormat, lifecycle, render, tree
from statesys.diagram._render import check_format, format_for_path, write_atomic
from statesys.exceptions import StatesysError

from . import small_tree

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")


@pytest.fixture(params=["which", "PATH"])
def no_dot(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No dot program, either as shutil.which reports it or as an empty PATH leaves it."""
    if request.param == "which":
        monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    else:
        monkeypatch.setenv("PATH", str(tmp_path))


@pytest.mark.usefixtures("no_dot")
def test_missing_dot_is_a_clear_error_naming_the_fix() -> None:
    with pytest.raises(GraphvizNotFound) as caught:
        lifecycle(format="svg")
    error = caught.value
    assert isinstance(error, StatesysError)
    assert isinstance(error, RuntimeError)
    assert error.missing == "dot"
    assert "apt-get install graphviz" in str(error)
    assert "brew install graphviz" in str(error)
    with pytest.raises(GraphvizNotFound, match="PNG"):
        tree(small_tree(), "png")
    with pytest.raises(GraphvizNotFound):
        render("digraph { a }", "svg")


@pytest.mark.usefixtures("no_dot")
def test_text_formats_need_no_dot() -> None:
    assert lifecycle(format="gv").startswith("digraph")
    assert "stateDiagram-v2" in lifecycle(format="mmd")
    assert tree(small_tree(), "gv").startswith("digraph")
    assert "flowchart" in tree(small_tree(), "mmd")


@needs_dot
def test_dot_failures_carry_its_message() -> None:
    with pytest.raises(GraphvizError, match="syntax error"):
        render("this is not dot {", "svg")


def test_render_only_renders_images() -> None:
    with pytest.raises(UnknownFormat):
        render("digraph { a }", "gv")  # type: ignore[arg-type]


def test_formats_by_name_and_suffix() -> None:
    assert check_format("svg") == "svg"
    assert format_for_path(Path("a/b.DOT")) == "gv"
    assert format_for_path(Path("x.mermaid")) == "mmd"
    with pytest.raises(UnknownFormat):
        format_for_path(Path("noext"))


def test_write_atomic_replaces_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "d.gv"
    write_atomic(target, "one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "three")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["d.gv"]
