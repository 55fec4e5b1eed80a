"""The public surface is curated and pinned."""

from __future__ import annotations

import statesys
import statesys.testing


def test_exports_are_pinned() -> None:
    assert sorted(statesys.__all__) == sorted(
        [
            "DEFAULT_LIFECYCLE",
            "FAIL_FAST",
            "BringUpFailed",
            "ConfigError",
            "DerivationError",
            "Context",
            "DefinitionError",
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
    )
    for name in statesys.__all__:
        assert getattr(statesys, name) is not None


def test_every_error_has_one_root_and_a_builtin() -> None:
    from statesys import exceptions

    for name in exceptions.__all__:
        exc = getattr(exceptions, name)
        assert issubclass(exc, statesys.StatesysError)
        if exc is not statesys.StatesysError:
            assert any(b in exc.__mro__ for b in (TypeError, RuntimeError, ValueError))
