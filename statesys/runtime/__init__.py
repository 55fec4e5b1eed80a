"""Runtime: where systems' code runs (loop, thread, dedicated process)."""

from ._orchestrator import Orchestrator, supervise
from ._runner import EXECUTORS, Runner

__all__ = ["EXECUTORS", "Orchestrator", "Runner", "supervise"]
