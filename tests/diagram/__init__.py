"""Duck-typed stand-ins for systems, shared by the diagram tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from statesys._lifecycle import DEFAULT_LIFECYCLE, Lifecycle


def gpu_free(model: Any, **kw: Any) -> bool:
    return True


def user_lifecycle() -> Lifecycle:
    """The default lifecycle with a ``draining`` state and a guard on ``start``."""
    return DEFAULT_LIFECYCLE.extend(
        states={"open": ["draining"]},
        transitions=[
            {"trigger": "drain", "source": "running", "dest": "draining"},
            {"trigger": "complete", "source": "draining", "dest": "completed"},
        ],
        name="drainable",
    ).with_guard("start", conditions=[gpu_free], name="drainable")


class FakeSystem:
    """What a tree diagram reads from a system, and nothing else."""

    lifecycle: ClassVar[Lifecycle] = DEFAULT_LIFECYCLE

    def __init__(
        self,
        name: str,
        state: str = "initial",
        subsystems: tuple[FakeSystem, ...] = (),
        *,
        cause: str | None = None,
    ) -> None:
        self.name = name
        self.state = state
        self.cause = cause
        self.subsystems = subsystems
        self.path = name
        for child in subsystems:
            child._reparent(name)

    def _reparent(self, prefix: str) -> None:
        self.path = f"{prefix}/{self.name}"
        for child in self.subsystems:
            child._reparent(self.path)

    def walk(self) -> list[FakeSystem]:
        out = [self]
        for child in self.subsystems:
            out.extend(child.walk())
        return out


class DrainableSystem(FakeSystem):
    lifecycle: ClassVar[Lifecycle] = user_lifecycle()


def small_tree() -> FakeSystem:
    """app (running) > trainer (running) > [loader (completed), worker (terminated)], logger (suspended)."""
    return FakeSystem(
        "app",
        "running",
        (
            FakeSystem(
                "trainer",
                "running",
                (
                    FakeSystem("loader", "completed"),
                    FakeSystem("worker", "terminated", cause='OOM: "killed" by <kernel>'),
                ),
            ),
            DrainableSystem("logger", "draining"),
            FakeSystem("monitor", "intermitted"),
        ),
    )


def wide_tree(size: int, make: Callable[..., FakeSystem] = FakeSystem) -> FakeSystem:
    """A root with `size` systems in all, ten subsystems per level."""
    states = DEFAULT_LIFECYCLE.states
    count = 1
    root = make("root", "running")
    level = [root]
    while count < size:
        nxt: list[FakeSystem] = []
        for parent in level:
            kids = []
            for _ in range(10):
                if count >= size:
                    break
                kids.append(make(f"s{count}", states[count % len(states)]))
                count += 1
            parent.subsystems = tuple(kids)
            for kid in kids:
                kid._reparent(parent.path)
            nxt.extend(kids)
        level = nxt
    return root
