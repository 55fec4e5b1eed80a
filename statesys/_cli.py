"""The ``statesys`` command: demo, run, diagram, replay."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from ._events import LOGGER, LogFormatter
from ._lifecycle import Lifecycle
from ._replay import replay
from ._system import System

__all__ = ["main"]


def _log_to(stream: Any, *, full_path: bool = False) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter(full_path=full_path))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    return handler


def _demo(args: argparse.Namespace) -> int:
    from ._demo import build_app

    app = build_app(args.seconds, systems=args.systems, executor=args.executor)
    handler = _log_to(sys.stdout, full_path=args.full_path)
    began = time.perf_counter()
    try:
        state = _run_tree(app)
    finally:
        LOGGER.removeHandler(handler)
    if args.timing:
        print(f"# {app.path}: {state} in {time.perf_counter() - began:.3f} s", file=sys.stderr)
    return 0 if state == "completed" else 1


def _run_tree(app: System) -> str:
    """Run a tree to its end; Ctrl-C terminates it (reverse start order) and exits non-zero."""

    async def go() -> str:
        task = asyncio.ensure_future(app.run())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not app.closed:
                await app.terminate("interrupted")
            return app.state

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        return app.state


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise LookupError(f"expected module:attribute, got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"cannot import {module_name!r}: {exc}") from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise LookupError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def _replay(args: argparse.Namespace) -> int:
    lifecycle: Any = None
    if args.lifecycle:
        try:
            lifecycle = _load(args.lifecycle)
        except LookupError as exc:
            print(f"statesys replay: {exc}", file=sys.stderr)
            return 2
        lifecycle = getattr(lifecycle, "lifecycle", lifecycle)
        if not isinstance(lifecycle, Lifecycle):
            print(f"statesys replay: {args.lifecycle} is not a Lifecycle or System class", file=sys.stderr)
            return 2
    try:
        report = replay(args.journal, lifecycle) if lifecycle else replay(args.journal)
    except (OSError, ValueError) as exc:
        print(f"statesys replay: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0 if report.ok else 1


def _run(args: argparse.Namespace) -> int:
    try:
        factory = _load(args.target)
    except LookupError as exc:
        print(f"statesys run: {exc}", file=sys.stderr)
        return 2
    system = factory() if callable(factory) and not isinstance(factory, System) else factory
    if not isinstance(system, System):
        print(f"statesys run: {args.target} gave {system!r}, not a statesys.System", file=sys.stderr)
        return 2
    handler = _log_to(sys.stdout, full_path=True)
    try:
        state = _run_tree(system)
    finally:
        LOGGER.removeHandler(handler)
    return 0 if state == "completed" else 1


def _diagram(argv: Sequence[str]) -> int:
    from .diagram._cli import main as diagram_main

    return diagram_main(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``statesys`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["diagram"]:
        return _diagram(argv[1:])
    parser = argparse.ArgumentParser(prog="statesys", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the source design's appSystem (two sleeping systems)")
    demo.add_argument("--systems", type=int, default=None, help="how many sleeping systems (default 2)")
    demo.add_argument(
        "--seconds", type=float, nargs="+", default=[5.0, 3.0], help="sleep of each system (cycled)"
    )
    demo.add_argument("--executor", default="process", choices=["process", "thread", "async"])
    demo.add_argument("--full-path", action="store_true", help="log app/child paths, not names")
    demo.add_argument("--timing", action="store_true", help="print the wall time to stderr")
    demo.set_defaults(func=_demo)

    run = sub.add_parser("run", help="run module:factory (a System or a callable returning one)")
    run.add_argument("target")
    run.set_defaults(func=_run)

    rep = sub.add_parser("replay", help="re-check a JSON-lines journal for legality")
    rep.add_argument("journal")
    rep.add_argument("--lifecycle", help="module:Attr, a Lifecycle or System class (default lifecycle)")
    rep.set_defaults(func=_replay)

    sub.add_parser("diagram", help="lifecycle or tree diagrams (statesys diagram --help)")
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
