"""Diagram files: ``statesys diagram ...`` and the repository's ``diagrams/`` directory.

Both write diagram files into a directory, so they live together:

    statesys diagram lifecycle [module:Attr] -o DIR --format gv,svg,png,mmd
    statesys diagram tree module:factory -o DIR --format gv,svg,png,mmd

A bad target (no such module or attribute, not a lifecycle or system) is one line on
stderr and exit code 2, like any usage error; a missing Graphviz, a factory that
raises or a file that cannot be written is one line and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from .._lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from ..exceptions import StatesysError
from ._lifecycle import lifecycle, lifecycle_dot, lifecycle_mermaid
from ._render import FORMATS, RENDERED, Format, UnknownFormat, check_format, find_dot, render, write_atomic
from ._tree import SystemLike, tree, tree_dot

__all__ = ["main", "write_repository_diagrams"]

_PROG = "statesys diagram"
_DEFAULT_FORMATS = "gv,svg,mmd"


class _UsageError(Exception):
    """A bad command line or target: exit code 2."""


class _Failed(Exception):
    """The command was right but could not be carried out: exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: error: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_PROG, description="Write lifecycle and system-tree diagrams.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{lifecycle,tree}")
    life = commands.add_parser(
        "lifecycle",
        help="diagram of a lifecycle",
        description="Diagram of a Lifecycle or of a class's lifecycle (default: the default lifecycle).",
    )
    life.add_argument(
        "target", nargs="?", help="module:Attr naming a Lifecycle or a class with a .lifecycle attribute"
    )
    sys_tree = commands.add_parser(
        "tree",
        help="diagram of a system tree, coloured by state",
        description="Diagram of the system tree a factory builds (or of a system object).",
    )
    sys_tree.add_argument("target", help="module:factory, a callable returning a system, or a system")
    for sub in (life, sys_tree):
        sub.add_argument("-o", "--output", default=".", type=Path, help="directory to write to (default: .)")
        sub.add_argument(
            "--format",
            default=_DEFAULT_FORMATS,
            help=f"comma-separated formats among {','.join(FORMATS)} (default: {_DEFAULT_FORMATS})",
        )
        sub.add_argument("--name", help="file name stem (default: the attribute name, 'lifecycle' or 'tree')")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``statesys diagram`` with `argv` (the words after ``diagram``); return the exit code."""
    try:
        args = _parser().parse_args(list(argv))
        formats = _formats(args.format)
        if args.command == "lifecycle":
            stem, lc = _lifecycle_target(args.target)
            if RENDERED.intersection(formats):
                find_dot()
            written = _write(args.output, args.name or stem, formats, lambda fmt: lifecycle(lc, fmt))
        else:
            system = _tree_target(args.target)
            if RENDERED.intersection(formats):
                find_dot()
            written = _write(args.output, args.name or "tree", formats, lambda fmt: tree(system, fmt))
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except _UsageError as error:
        print(_one_line(str(error)), file=sys.stderr)
        return 2
    except (_Failed, StatesysError, OSError) as error:
        print(f"{_PROG}: error: {_one_line(str(error))}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _formats(spec: str) -> list[Format]:
    try:
        formats = [check_format(word.strip()) for word in spec.split(",") if word.strip()]
    except UnknownFormat as error:
        raise _UsageError(f"{_PROG}: error: --format: {error}") from None
    if not formats:
        raise _UsageError(f"{_PROG}: error: --format: expected one or more of {','.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def _write(
    directory: Path, stem: str, formats: Sequence[Format], draw: Callable[[Format], str | bytes]
) -> list[Path]:
    drawings = {directory / f"{stem}.{fmt}": draw(fmt) for fmt in formats}  # all, before any is written
    directory.mkdir(parents=True, exist_ok=True)
    for path, data in drawings.items():
        write_atomic(path, data)
    return list(drawings)


# -- targets ---------------------------------------------------------------------------


@contextmanager
def _cwd_importable() -> Iterator[None]:
    """Let ``module:Attr`` name modules of the current directory, as ``python -m`` would."""
    cwd = os.getcwd()
    added = "" not in sys.path and cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _resolve(target: str) -> tuple[str, Any]:
    """Import ``module:attr.path``; return the last attribute name and the object."""
    module_name, colon, attr_path = target.partition(":")
    if not colon or not module_name or not attr_path:
        raise _UsageError(f"{_PROG}: error: expected module:attribute, got {target!r}")
    with _cwd_importable():
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as error:
            raise _UsageError(f"{_PROG}: error: cannot import {module_name!r}: {error}") from None
        except Exception as error:
            raise _UsageError(
                f"{_PROG}: error: importing {module_name!r} raised {type(error).__name__}: {error}"
            ) from None
    where = module_name
    for name in attr_path.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise _UsageError(f"{_PROG}: error: {where!r} has no attribute {name!r}") from None
        where = f"{where}:{name}" if where == module_name else f"{where}.{name}"
    return attr_path.rsplit(".", 1)[-1], obj


def _lifecycle_target(target: str | None) -> tuple[str, Lifecycle]:
    if target is None:
        return "lifecycle", DEFAULT_LIFECYCLE
    stem, obj = _resolve(target)
    if isinstance(obj, Lifecycle):
        return stem, obj
    if isinstance(getattr(obj, "lifecycle", None), Lifecycle):
        return stem, obj.lifecycle
    raise _UsageError(
        f"{_PROG}: error: {target} is {_describe(obj)}; "
        "expected a Lifecycle or a class with a .lifecycle attribute"
    )


def _is_system(obj: object) -> bool:
    return (
        not isinstance(obj, type)
        and all(hasattr(obj, attr) for attr in ("name", "path", "state", "subsystems"))
        and isinstance(getattr(type(obj), "lifecycle", None), Lifecycle)
    )


def _tree_target(target: str) -> SystemLike:
    _, obj = _resolve(target)
    if _is_system(obj):
        return obj  # type: ignore[no-any-return]
    if not callable(obj):
        raise _UsageError(
            f"{_PROG}: error: {target} is {_describe(obj)}; expected a system or a callable returning one"
        )
    try:
        built = obj()
        if inspect.iscoroutine(built):
            built = asyncio.run(built)
    except Exception as error:
        raise _Failed(f"{target}() raised {type(error).__name__}: {error}") from None
    if not _is_system(built):
        raise _UsageError(f"{_PROG}: error: {target}() returned {_describe(built)}; expected a system")
    return built  # type: ignore[no-any-return]


def _describe(obj: object) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}"
    text = repr(obj)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"a {type(obj).__qualname__} ({text})"


# -- the repository's diagrams/ -------------------------------------------------------


def write_repository_diagrams(root: Path) -> list[Path]:
    """(Re)generate ``root/diagrams``: the default lifecycle (gv, svg, mmd) and the demo tree (gv, svg).

    The output is deterministic (no timestamps, declaration order), so a test can
    compare the files with a fresh generation.  A file whose content is unchanged is
    not rewritten.  The demo tree is skipped while ``statesys._demo.build_app`` does
    not exist.
    """
    out = Path(root) / "diagrams"
    out.mkdir(parents=True, exist_ok=True)
    dot = lifecycle_dot(DEFAULT_LIFECYCLE)
    files: list[tuple[str, str | bytes]] = [
        ("lifecycle.gv", dot),
        ("lifecycle.svg", render(dot, "svg")),
        ("lifecycle.mmd", lifecycle_mermaid(DEFAULT_LIFECYCLE)),
    ]
    build_app = _demo_factory()
    if build_app is not None:
        tree_source = tree_dot(build_app())
        files += [("demo-tree.gv", tree_source), ("demo-tree.svg", render(tree_source, "svg"))]
    written = []
    for name, data in files:
        path = out / name
        payload = data.encode("utf-8") if isinstance(data, str) else data
        if not path.exists() or path.read_bytes() != payload:
            write_atomic(path, payload)
        written.append(path)
    return written


def _demo_factory() -> Callable[[], SystemLike] | None:
    # find_spec, not a try/except ImportError around the import: an ImportError raised
    # inside an existing demo module is a bug to report, not a reason to skip.
    if importlib.util.find_spec("statesys._demo") is None:
        return None
    demo = importlib.import_module("statesys._demo")
    factory = getattr(demo, "build_app", None)
    return factory if callable(factory) else None
