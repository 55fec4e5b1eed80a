"""The ``statesys`` command: demo, run, diagram, replay."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ._events import LOGGER, LogFormatter
from ._lifecycle import Lifecycle
from ._replay import replay
from ._system import System

__all__ = ["main"]


@contextlib.contextmanager
def _log_to(stream: Any, *, full_path: bool = False) -> Iterator[None]:
    """Print transitions in the source format while the command runs; restore the logger after."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter(full_path=full_path))
    saved = LOGGER.level, LOGGER.propagate
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(saved[0])
        LOGGER.propagate = saved[1]


def _demo(args: argparse.Namespace) -> int:
    from ._demo import build_app

    app = build_app(args.seconds, systems=args.systems, executor=args.executor)
    began = time.perf_counter()
    with _log_to(sys.stdout, full_path=args.full_path):
        code = _run_tree(app)
    if args.timing:
        print(f"# {app.path}: {app.state} in {time.perf_counter() - began:.3f} s", file=sys.stderr)
    return code


def _run_tree(app: System, *, live: bool = False, diagram: str | None = None) -> int:
    """Run a tree to its end; Ctrl-C or SIGTERM terminates it in reverse start order.

    Returns the exit code: 0 completed, 1 otherwise, 130 after Ctrl-C, 143 after SIGTERM.
    """
    from .runtime._orchestrator import supervise

    async def go() -> str:
        refreshers = []
        if diagram:
            refreshers.append(_diagram_refresher(app, diagram))
        if live:
            refreshers.append(_live_view(app))
        tasks = [asyncio.ensure_future(r) for r in refreshers]
        try:
            return await supervise(app)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    from ._system import _prefork

    _prefork(app)
    try:
        state = asyncio.run(go())
    except KeyboardInterrupt:
        print(f"statesys: interrupted; {app.path} is {app.state}", file=sys.stderr)
        return 130
    except SystemExit as exc:
        print(f"statesys: terminated by signal; {app.path} is {app.state}", file=sys.stderr)
        return int(exc.code or 1)
    return 0 if state == "completed" else 1


async def _changes(app: System, every: float) -> Any:
    """Yield (at most every `every` seconds) after the tree changed, and once at the end."""
    changed = asyncio.Event()
    changed.set()
    unsubscribe = app.subscribe(lambda _event: changed.set())
    try:
        while True:
            await changed.wait()
            changed.clear()
            yield
            await asyncio.sleep(every)
    finally:
        unsubscribe()


async def _diagram_refresher(app: System, path: str) -> None:
    from .diagram import LiveTreeDiagram

    live = LiveTreeDiagram(app, path)
    try:
        async for _ in _changes(app, 0.2):
            await asyncio.to_thread(live.update)
    finally:
        live.update()


async def _live_view(app: System) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.tree import Tree

    colours = {
        "initial": "white",
        "ready": "cyan",
        "running": "green",
        "disabled": "yellow",
        "intermitted": "magenta",
        "completed": "blue",
        "terminated": "red",
    }

    def render() -> Tree:
        def add(node: Any, system: System) -> None:
            label = f"[bold]{system.name}[/] [{colours.get(system.state, 'white')}]{system.state}[/]"
            if system.cause and system.state != "completed":
                label += f" [dim]{system.cause.splitlines()[-1][:60]}[/]"
            branch = node.add(label)
            for child in system.subsystems:
                add(branch, child)

        tree = Tree(f"[bold]{app.name}[/] [{colours.get(app.state, 'white')}]{app.state}[/]")
        for child in app.subsystems:
            add(tree, child)
        return tree

    with Live(render(), console=Console(stderr=True), auto_refresh=False, transient=False) as view:
        try:
            async for _ in _changes(app, 0.1):
                view.update(render(), refresh=True)
        finally:
            view.update(render(), refresh=True)


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
    live = not args.no_live and sys.stderr.isatty() and _has("rich")
    if live and not args.log:
        return _run_tree(system, live=live, diagram=args.diagram)
    with _log_to(sys.stdout, full_path=True):
        return _run_tree(system, live=live, diagram=args.diagram)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


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
    run.add_argument("--diagram", metavar="FILE", help="keep FILE (.svg/.png/.gv/.mmd) drawing the live tree")
    run.add_argument("--no-live", action="store_true", help="no live status view; log lines only")
    run.add_argument("--log", action="store_true", help="log lines to stdout beside the live view")
    run.set_defaults(func=_run)

    rep = sub.add_parser("replay", help="re-check a JSON-lines journal for legality")
    rep.add_argument("journal")
    rep.add_argument("--lifecycle", help="module:Attr, a Lifecycle or System class (default lifecycle)")
    rep.set_defaults(func=_replay)

    sub.add_parser("diagram", help="lifecycle or tree diagrams (statesys diagram --help)")
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def entry() -> None:
    """The console script: `main`, then a prompt exit.

    Everything the command started is closed by the time `main` returns (the tree,
    its workers, the fork server, shut down here explicitly), so the interpreter's
    finalisation, tens of milliseconds of module teardown, is skipped.
    """
    code = main()
    from .runtime import _forkserver

    _forkserver.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os._exit(code)
