"""The source design's application: ``appSystem`` with two sleeping subsystems."""

from __future__ import annotations

from collections.abc import Sequence

from ._context import Context
from ._system import System

__all__ = ["Sleep", "build_app"]


class Sleep(System):
    """Sleeps `seconds` in its main, waking early when asked to finish or terminate."""

    seconds: float = 3.0

    def main(self, ctx: Context) -> None:
        ctx.sleep(self.seconds)


def build_app(
    seconds: Sequence[float] = (5.0, 3.0), *, systems: int | None = None, executor: str = "process"
) -> System:
    """``appSystem`` with ``sleepSystem1..N``; `seconds` cycles when `systems` asks for more."""
    count = systems if systems is not None else len(seconds)
    children = [
        Sleep(f"sleepSystem{i + 1}", seconds=float(seconds[i % len(seconds)]), executor=executor)
        for i in range(count)
    ]
    return System("appSystem", subsystems=children)
