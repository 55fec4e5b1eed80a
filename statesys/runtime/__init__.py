"""Runtime: where systems' code runs (loop, thread, dedicated process)."""

from ._runner import EXECUTORS, Runner

__all__ = ["EXECUTORS", "Runner"]
