"""Diagram benchmarks, each against a baseline measured in the same run.

* lifecycle -> SVG (target <= 50 ms), against a plain transitions
  ``HierarchicalGraphMachine`` built from the same declaration and piped through
  ``dot`` by the ``graphviz`` package;
* DOT of a 1,000-system tree (target <= 0.5 s), against the same nodes and edges
  added one by one to a ``graphviz.Digraph``.

Run: ``python bench/bench_diagram.py``.  Prints; asserts nothing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _util import transitions_nested

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LIFECYCLE_SVG_TARGET = 0.050
TREE_DOT_TARGET = 0.5
TREE_SIZE = 1000


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def baseline_machine() -> Any:
    """transitions' own GraphMachine of the default lifecycle, as its docs would build it."""
    from transitions.extensions.diagrams import HierarchicalGraphMachine

    from statesys._lifecycle import DEFAULT_LIFECYCLE

    kwargs, _ = transitions_nested()
    return HierarchicalGraphMachine(
        **kwargs, show_conditions=True, title=DEFAULT_LIFECYCLE.name, graph_engine="graphviz"
    )


class Fake:
    """A duck-typed system."""

    from statesys._lifecycle import DEFAULT_LIFECYCLE

    lifecycle = DEFAULT_LIFECYCLE

    def __init__(self, name: str, path: str, state: str) -> None:
        self.name, self.path, self.state, self.cause = name, path, state, None
        self.subsystems: tuple[Fake, ...] = ()


def fake_tree(size: int) -> Fake:
    states = Fake.lifecycle.states
    root = Fake("app", "app", "running")
    level, count = [root], 1
    while count < size:
        nxt = []
        for parent in level:
            kids = []
            for _ in range(10):
                if count == size:
                    break
                name = f"s{count}"
                kids.append(Fake(name, f"{parent.path}/{name}", states[count % len(states)]))
                count += 1
            parent.subsystems = tuple(kids)
            nxt.extend(kids)
        level = nxt
    return root


def baseline_tree_dot(root: Fake) -> str:
    import graphviz

    graph = graphviz.Digraph("tree")
    stack = [root]
    while stack:
        system = stack.pop()
        graph.node(system.path, label=f"{system.name}\n{system.state}", style="filled", fillcolor="white")
        for child in system.subsystems:
            graph.edge(system.path, child.path)
            stack.append(child)
    return str(graph.source)


def verdict(seconds: float, target: float) -> str:
    return f"{'within' if seconds <= target else 'OVER'} target {target * 1000:.0f} ms"


def main() -> None:
    start = time.perf_counter()
    from statesys._lifecycle import DEFAULT_LIFECYCLE
    from statesys.diagram import LiveTreeDiagram, lifecycle, lifecycle_dot, tree, tree_dot

    lifecycle_dot(DEFAULT_LIFECYCLE)
    print(f"first lifecycle DOT, imports included: {(time.perf_counter() - start) * 1000:.1f} ms")

    machine = baseline_machine()
    ours_dot = timed(lambda: lifecycle_dot(DEFAULT_LIFECYCLE), 50)
    base_dot = timed(lambda: baseline_machine().get_graph().source, 50)
    print(
        f"lifecycle -> DOT   statesys {ours_dot * 1000:7.2f} ms   transitions GraphMachine "
        f"{base_dot * 1000:7.2f} ms   ratio {ours_dot / base_dot:.2f}"
    )
    ours_svg = timed(lambda: lifecycle(DEFAULT_LIFECYCLE, "svg"), 20)
    base_svg = timed(lambda: baseline_machine().get_graph().pipe(format="svg"), 20)
    print(
        f"lifecycle -> SVG   statesys {ours_svg * 1000:7.2f} ms   transitions GraphMachine "
        f"{base_svg * 1000:7.2f} ms   ratio {ours_svg / base_svg:.2f}   "
        + verdict(ours_svg, LIFECYCLE_SVG_TARGET)
    )
    del machine

    root = fake_tree(TREE_SIZE)
    ours_tree = timed(lambda: tree_dot(root), 20)
    base_tree = timed(lambda: baseline_tree_dot(root), 20)
    print(
        f"tree -> DOT ({TREE_SIZE} systems)   statesys {ours_tree * 1000:7.2f} ms   graphviz.Digraph "
        f"{base_tree * 1000:7.2f} ms   ratio {ours_tree / base_tree:.2f}   "
        + verdict(ours_tree, TREE_DOT_TARGET)
    )
    with tempfile.TemporaryDirectory() as tmp:
        live = LiveTreeDiagram(root, Path(tmp) / "tree.gv")
        live.update()
        unchanged = timed(live.update, 20)
        print(f"LiveTreeDiagram.update(), nothing changed ({TREE_SIZE} systems): {unchanged * 1000:.2f} ms")
    start = time.perf_counter()
    tree(root, "svg")
    elapsed = time.perf_counter() - start
    print(f"tree -> SVG ({TREE_SIZE} systems, one run, mostly dot's layout): {elapsed:.2f} s")


if __name__ == "__main__":
    main()
