"""Hypothesis strategies and lifecycles shared by the test suite."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from statesys import DEFAULT_LIFECYCLE, Lifecycle


def triggers_of(lifecycle: Lifecycle) -> st.SearchStrategy[str]:
    return st.sampled_from(lifecycle.triggers)


def trigger_calls(lifecycle: Lifecycle, max_size: int = 25) -> st.SearchStrategy[list[tuple[str, int]]]:
    """Random (trigger, n) sequences, legal and illegal alike; `n` feeds guards."""
    return st.lists(st.tuples(triggers_of(lifecycle), st.integers(0, 3)), max_size=max_size)


class Recorder:
    """Builds guards and hooks that log each call (name, state at call, n)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def hook(self, name: str) -> Any:
        def fn(model: Any, n: int = 0, **kwargs: Any) -> None:
            self.calls.append((name, model._state if hasattr(model, "_state") else model.state, n))

        fn.__name__ = fn.__qualname__ = name
        return fn

    def guard(self, name: str, predicate: Any) -> Any:
        def fn(model: Any, n: int = 0, **kwargs: Any) -> bool:
            self.calls.append((name, model._state if hasattr(model, "_state") else model.state, n))
            return bool(predicate(n))

        fn.__name__ = fn.__qualname__ = name
        return fn


def door(rec: Recorder) -> Lifecycle:
    """A non-default lifecycle: guards, on_enter/on_exit, a group source, one final state."""
    return Lifecycle(
        states=[
            {
                "name": "whole",
                "children": [
                    {"name": "shut", "on_enter": rec.hook("enter_shut"), "on_exit": rec.hook("exit_shut")},
                    "opened",
                    {"name": "locked", "on_enter": rec.hook("enter_locked")},
                ],
            },
            {"name": "broken", "final": True},
        ],
        transitions=[
            {"trigger": "open", "source": "shut", "dest": "opened", "before": rec.hook("before_open")},
            {"trigger": "close", "source": "opened", "dest": "shut", "after": rec.hook("after_close")},
            {
                "trigger": "lock",
                "source": "shut",
                "dest": "locked",
                "conditions": rec.guard("has_key", lambda n: n > 0),
            },
            {
                "trigger": "unlock",
                "source": "locked",
                "dest": "shut",
                "conditions": rec.guard("has_key2", lambda n: n > 0),
                "unless": rec.guard("jammed", lambda n: n == 3),
            },
            {"trigger": "smash", "source": "whole", "dest": "broken", "prepare": rec.hook("prep_smash")},
        ],
        initial="shut",
        name="door",
    )


def extended_default(rec: Recorder) -> Lifecycle:
    """The default lifecycle with a draining state, a guard on start and before/after hooks."""
    base = DEFAULT_LIFECYCLE.extend(
        states={"open": [{"name": "draining", "on_enter": rec.hook("enter_draining")}]},
        transitions=[
            {
                "trigger": "drain",
                "source": "running",
                "dest": "draining",
                "before": rec.hook("before_drain"),
                "unless": rec.guard("busy", lambda n: n == 2),
            },
            {
                "trigger": "complete",
                "source": "draining",
                "dest": "completed",
                "after": rec.hook("after_done"),
            },
        ],
        name="draining",
    )
    return base.with_guard("start", conditions=rec.guard("gpu_free", lambda n: n != 1))


def lifecycles(rec: Recorder) -> dict[str, Lifecycle]:
    return {"default": DEFAULT_LIFECYCLE, "door": door(rec), "draining": extended_default(rec)}


#: The source design's log, in order: (system, state) for appSystem with sleepSystem1
#: sleeping longer than sleepSystem2.
ARTICLE_ORDER = [
    ("sleepSystem1", "ready"),
    ("sleepSystem2", "ready"),
    ("appSystem", "ready"),
    ("sleepSystem1", "running"),
    ("sleepSystem2", "running"),
    ("appSystem", "running"),
    ("sleepSystem2", "completed"),
    ("sleepSystem1", "completed"),
    ("appSystem", "completed"),
]
