"""The exceptions statesys raises: one root, each leaf also a builtin it stands for."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BringUpFailed",
    "ConfigError",
    "DefinitionError",
    "DerivationError",
    "GuardRejected",
    "HookFailed",
    "RemoteError",
    "StatesysError",
    "TransitionNotAllowed",
    "WorkerDied",
]


class StatesysError(Exception):
    """Root of every error statesys raises."""


class DefinitionError(StatesysError, TypeError):
    """A lifecycle, System class or tree is declared wrongly; raised when it is defined."""

    def __init__(self, owner: str, problems: Sequence[str]) -> None:
        self.owner = owner
        self.problems = tuple(problems)
        super().__init__(f"{owner}: " + "; ".join(self.problems))


class ConfigError(StatesysError, TypeError):
    """A System was constructed with a configuration value of the wrong kind."""

    def __init__(self, system: str, field: str, message: str) -> None:
        self.system = system
        self.field = field
        super().__init__(f"{system}.{field}: {message}")


class TransitionNotAllowed(StatesysError, RuntimeError):
    """A trigger was fired where the lifecycle has no route for it; nothing changed."""

    def __init__(
        self,
        system: str,
        state: str,
        trigger: str,
        allowed: Sequence[str],
        *,
        final: bool = False,
        detail: str | None = None,
    ) -> None:
        self.system = system
        self.state = state
        self.trigger = trigger
        self.allowed = tuple(allowed)
        if detail is None:
            if self.allowed:
                detail = "allowed: " + ", ".join(self.allowed)
            elif final:
                detail = f"allowed: none — {state} is final"
            else:
                detail = "allowed: none"
            detail = f"'{trigger}' is not allowed there ({detail})"
        super().__init__(f"{system} is '{state}'; {detail}")


class GuardRejected(TransitionNotAllowed):
    """A guard (`conditions` / `unless`) refused the trigger; nothing changed."""

    def __init__(
        self, system: str, state: str, trigger: str, allowed: Sequence[str], guard: str, kind: str
    ) -> None:
        self.guard = guard
        self.kind = kind
        want = "true" if kind == "conditions" else "false"
        super().__init__(
            system,
            state,
            trigger,
            allowed,
            detail=(
                f"'{trigger}' was refused by guard {guard} ({kind}: it must return {want}); "
                "fix what the guard checks, then fire the trigger again"
            ),
        )


class HookFailed(StatesysError, RuntimeError):
    """A hook raised inside a trigger that does not absorb failures into a state."""

    def __init__(self, system: str, hook: str, cause: str) -> None:
        self.system = system
        self.hook = hook
        self.cause = cause
        super().__init__(f"{system}: {hook}() raised: {cause}")


class RemoteError(StatesysError, RuntimeError):
    """A hook raised in another process; carries the remote type name and traceback text."""

    def __init__(self, system: str, type_name: str, message: str, remote_traceback: str) -> None:
        self.system = system
        self.type_name = type_name
        self.remote_traceback = remote_traceback
        super().__init__(f"{system}: {type_name}: {message}")


class WorkerDied(StatesysError, RuntimeError):
    """The process running a system's code ended without reporting (killed, crashed, exited)."""

    def __init__(self, system: str, pid: int, exitcode: int | None, detail: str) -> None:
        self.system = system
        self.pid = pid
        self.exitcode = exitcode
        super().__init__(f"{system}: process {pid} {detail}")


class BringUpFailed(StatesysError, RuntimeError):
    """A subsystem added to a running tree could not reach its parent's level; it was not added."""

    def __init__(self, system: str, state: str, target: str, cause: str | None) -> None:
        self.system = system
        self.state = state
        self.cause = cause
        why = f" ({cause.splitlines()[-1]})" if cause else ""
        super().__init__(
            f"{system} could not be brought up to {target!r}: it is {state!r}{why}; "
            "it was terminated and not added — fix its prepare/main, then add a new instance"
        )


class DerivationError(StatesysError, RuntimeError):
    """A derivation policy asked a parent for a move its lifecycle does not have."""

    def __init__(self, system: str, policy: object, source: str, dest: str, after: str) -> None:
        self.system = system
        self.source = source
        self.dest = dest
        super().__init__(
            f"{system}: policy {policy!r} derived the illegal move {source!r} -> {dest!r} after {after}; "
            "check the policy with statesys.testing.check_policy"
        )
