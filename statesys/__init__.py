"""statesys: long-running systems with declared lifecycles, derived parent state and logs."""

from ._context import Context, Terminating
from ._events import Event, Journal, LogFormatter, format_line, read_journal
from ._hierarchy import FAIL_FAST, DerivationPolicy, FailFast
from ._lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from ._replay import ReplayReport, replay
from ._system import Restart, System, run
from .exceptions import (
    BringUpFailed,
    ConfigError,
    DefinitionError,
    DerivationError,
    GuardRejected,
    HookFailed,
    RemoteError,
    StatesysError,
    TransitionNotAllowed,
    WorkerDied,
)

__all__ = [
    "DEFAULT_LIFECYCLE",
    "FAIL_FAST",
    "BringUpFailed",
    "ConfigError",
    "Context",
    "DefinitionError",
    "DerivationError",
    "DerivationPolicy",
    "Event",
    "FailFast",
    "GuardRejected",
    "HookFailed",
    "Journal",
    "Lifecycle",
    "LogFormatter",
    "RemoteError",
    "ReplayReport",
    "Restart",
    "StatesysError",
    "System",
    "Terminating",
    "TransitionNotAllowed",
    "WorkerDied",
    "format_line",
    "read_journal",
    "replay",
    "run",
]
