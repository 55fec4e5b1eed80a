"""Rendering DOT with Graphviz's ``dot`` program, and writing diagram files atomically.

DOT and Mermaid are text that statesys builds itself; SVG and PNG need the ``dot``
program.  It is looked up on every render (a PATH scan costs microseconds), so that
installing Graphviz while a long-running process lives is enough, and so that its
absence is reported where it matters, with the fix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Final, Literal, TypeAlias

from ..exceptions import StatesysError

__all__ = [
    "FORMATS",
    "RENDERED",
    "Format",
    "GraphvizError",
    "GraphvizNotFound",
    "UnknownFormat",
    "check_format",
    "find_dot",
    "format_for_path",
    "render",
    "write_atomic",
]

#: ``gv`` DOT source, ``mmd`` Mermaid source (both text, need nothing), ``svg`` and ``png`` (need ``dot``).
Format: TypeAlias = Literal["gv", "svg", "png", "mmd"]
FORMATS: Final[tuple[Format, ...]] = ("gv", "svg", "png", "mmd")
#: Formats that need the ``dot`` program.
RENDERED: Final = frozenset({"svg", "png"})
_SUFFIXES: Final[dict[str, Format]] = {
    ".gv": "gv",
    ".dot": "gv",
    ".svg": "svg",
    ".png": "png",
    ".mmd": "mmd",
    ".mermaid": "mmd",
}


class GraphvizError(StatesysError, RuntimeError):
    """Graphviz could not produce a diagram."""


class GraphvizNotFound(GraphvizError):
    """A part of Graphviz that a diagram format needs is not installed.

    ``missing`` is ``"dot"`` (the program, needed for SVG and PNG) or ``"graphviz"``
    (the Python package through which `transitions` draws lifecycles as DOT).
    """

    def __init__(self, missing: Literal["dot", "graphviz"], needed_for: str) -> None:
        self.missing = missing
        self.needed_for = needed_for
        if missing == "dot":
            fix = (
                "install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), "
                "`brew install graphviz` (macOS), or see https://graphviz.org/download/; "
                "DOT (gv) and Mermaid (mmd) output need no Graphviz"
            )
            what = "Graphviz's `dot` program was not found on PATH"
        else:
            fix = "`pip install 'statesys[diagrams]'` (or `pip install graphviz`)"
            what = "the Python package `graphviz` is not installed"
        super().__init__(f"{what}; it is needed for {needed_for}: {fix}")


class UnknownFormat(StatesysError, ValueError):
    """A diagram format (or file suffix) that statesys does not produce."""

    def __init__(self, given: str) -> None:
        self.given = given
        super().__init__(
            f"unknown diagram format {given!r}: expected one of {', '.join(FORMATS)} "
            f"(file suffixes {', '.join(_SUFFIXES)})"
        )


def check_format(fmt: str) -> Format:
    """`fmt` as a `Format`, or `UnknownFormat`."""
    for known in FORMATS:
        if fmt == known:
            return known
    raise UnknownFormat(fmt)


def format_for_path(path: Path) -> Format:
    """The format a file name asks for, by its suffix."""
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise UnknownFormat(path.suffix or path.name) from None


def find_dot(needed_for: str = "SVG and PNG diagrams") -> str:
    """The path of the ``dot`` program, or `GraphvizNotFound` naming the fix."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFound("dot", needed_for)
    return dot


def render(source: str, format: Literal["svg", "png"]) -> bytes:
    """Lay out DOT `source` with ``dot`` and return the image bytes."""
    if format not in RENDERED:
        raise UnknownFormat(format)
    dot = find_dot(f"{format.upper()} diagrams")
    try:
        done = subprocess.run(
            [dot, f"-T{format}"], input=source.encode("utf-8"), capture_output=True, check=False
        )
    except FileNotFoundError:  # removed between the lookup and the call
        raise GraphvizNotFound("dot", f"{format.upper()} diagrams") from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip() or f"exit code {done.returncode}"
        raise GraphvizError(f"{dot} -T{format} failed: {detail}")
    return done.stdout


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a torn one."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    # Same directory, so os.replace is a rename on one file system; the name is unique
    # per process and thread, so concurrent writers never share a temporary file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

