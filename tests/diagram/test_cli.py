"""``statesys diagram lifecycle|tree``: files written, and one-line errors with exit codes."""

from __future__ import annotations

import itertools
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from statesys._lifecycle import DEFAULT_LIFECYCLE
from statesys.diagram import lifecycle_dot, lifecycle_mermaid, tree_dot
from statesys.diagram._cli import main

_numbers = itertools.count()

TARGETS = textwrap.dedent(
    """
    from statesys._lifecycle import DEFAULT_LIFECYCLE

    DRAINABLE = DEFAULT_LIFECYCLE.extend(
        states={"open": ["draining"]},
        transitions=[
            {"trigger": "drain", "source": "running", "dest": "draining"},
            {"trigger": "complete", "source": "draining", "dest": "completed"},
        ],
        name="drainable",
    )
    NOT_A_LIFECYCLE = 42


    class Trainer:
        lifecycle = DRAINABLE


    class Node:
        lifecycle = DEFAULT_LIFECYCLE

        def __init__(self, name, state, subsystems=(), prefix=""):
            self.name, self.state, self.cause = name, state, None
            self.path = prefix + name
            self.subsystems = tuple(
                Node(n, s, k, self.path + "/") for n, s, k in subsystems
            )


    def build():
        return Node("app", "running", [("a", "ready", ()), ("b", "running", [("c", "completed", ())])])


    async def build_async():
        return build()


    APP = build()


    def returns_junk():
        return "junk"


    def explodes():
        raise ValueError("no config\\nfound")
    """
)


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of targets in the current directory, importable as the CLI imports it."""
    name = f"diagram_targets_{next(_numbers)}"
    (tmp_path / f"{name}.py").write_text(TARGETS)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_default_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["lifecycle", "-o", str(tmp_path / "d"), "--format", "gv,mmd"], capsys)
    assert (code, err) == (0, [])
    assert out == [str(tmp_path / "d" / "lifecycle.gv"), str(tmp_path / "d" / "lifecycle.mmd")]
    assert (tmp_path / "d" / "lifecycle.gv").read_text() == lifecycle_dot(DEFAULT_LIFECYCLE)
    assert (tmp_path / "d" / "lifecycle.mmd").read_text() == lifecycle_mermaid(DEFAULT_LIFECYCLE)


@pytest.mark.parametrize(("attr", "stem"), [("DRAINABLE", "DRAINABLE"), ("Trainer", "Trainer")])
def test_lifecycle_of_a_module_attribute(
    module: str, attr: str, stem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["lifecycle", f"{module}:{attr}", "-o", "out", "--format", "gv"], capsys)
    assert code == 0
    assert out == [str(Path("out") / f"{stem}.gv")]
    text = (tmp_path / "out" / f"{stem}.gv").read_text()
    assert "draining" in text
    assert text == lifecycle_dot(sys.modules[module].DRAINABLE)


def test_name_overrides_the_stem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["lifecycle", "-o", str(tmp_path), "--format", "mmd", "--name", "x"], capsys)
    assert (code, out) == (0, [str(tmp_path / "x.mmd")])


@pytest.mark.parametrize("attr", ["build", "build_async", "APP"])
def test_tree_from_a_factory_or_a_system(
    module: str, attr: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["tree", f"{module}:{attr}", "--format", "gv,mmd"], capsys)
    assert (code, err) == (0, [])
    assert out == ["tree.gv", "tree.mmd"]
    text = (tmp_path / "tree.gv").read_text()
    assert 'tooltip="app/b/c: completed"' in text
    built = sys.modules[module].build()
    assert text == tree_dot(built)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_images(module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(["tree", f"{module}:build", "--format", "svg,png"], capsys)
    assert code == 0
    assert (tmp_path / "tree.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (tmp_path / "tree.svg").read_bytes()


BAD_TARGETS = [
    (["lifecycle", "no_such_module_xyz:X"], "cannot import 'no_such_module_xyz'"),
    (["lifecycle", "{module}:Missing"], "has no attribute 'Missing'"),
    (["lifecycle", "{module}:NOT_A_LIFECYCLE"], "expected a Lifecycle or a class with a .lifecycle"),
    (["lifecycle", "{module}"], "expected module:attribute"),
    (["tree", "{module}:NOT_A_LIFECYCLE"], "expected a system or a callable returning one"),
    (["tree", "{module}:returns_junk"], "returned a str ('junk'); expected a system"),
    (["tree", "{module}:Trainer"], "expected a system"),
    (["tree", "no_such_module_xyz:build"], "No module named 'no_such_module_xyz'"),
    (["lifecycle", "--format", "gv,jpeg"], "unknown diagram format 'jpeg'"),
    (["lifecycle", "--format", ","], "expected one or more of"),
    (["paint"], "invalid choice: 'paint'"),
    ([], "the following arguments are required"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_TARGETS)
def test_bad_targets_are_one_line_and_exit_2(
    module: str, argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run([word.format(module=module) for word in argv], capsys)
    assert code == 2
    assert out == []
    assert len(err) == 1
    assert err[0].startswith("statesys diagram")
    assert message in err[0]
    written = sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__")  # imports may cache
    assert written == [f"{module}.py"]  # nothing written


def test_a_failing_factory_is_one_line_and_exit_1(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["tree", f"{module}:explodes"], capsys)
    assert code == 1
    assert err == [f"statesys diagram: error: {module}:explodes() raised ValueError: no config found"]


def test_missing_dot_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    code, _, err = run(["lifecycle", "-o", str(tmp_path), "--format", "gv,svg"], capsys)
    assert code == 1
    assert len(err) == 1
    assert "apt-get install graphviz" in err[0]
    assert list(tmp_path.iterdir()) == []  # checked before anything is written


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "lifecycle" in capsys.readouterr().out
