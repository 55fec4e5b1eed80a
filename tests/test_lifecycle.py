"""Declarations: checked when made, every offender named in one DefinitionError."""

from __future__ import annotations

from typing import Any

import pytest

from statesys import DEFAULT_LIFECYCLE, DefinitionError, GuardRejected, Lifecycle, TransitionNotAllowed

BASE_T = [
    {"trigger": "go", "source": "a", "dest": "b"},
    {"trigger": "stop", "source": "b", "dest": "end"},
]
BASE_S: list[Any] = ["a", "b", {"name": "end", "final": True}]


def problems(states: Any = BASE_S, transitions: Any = BASE_T, initial: str = "a") -> str:
    with pytest.raises(DefinitionError) as info:
        Lifecycle(states, transitions, initial=initial, name="Trainer.lifecycle")
    assert isinstance(info.value, TypeError)
    return str(info.value)


def test_valid_declaration_compiles() -> None:
    lc = Lifecycle(BASE_S, BASE_T, initial="a")
    assert lc.states == ("a", "b", "end")
    assert lc.allowed("a") == ("go",)
    assert lc.final_states == {"end"}


def test_unknown_state_in_transition() -> None:
    msg = problems(transitions=[*BASE_T, {"trigger": "x", "source": "b", "dest": "nowhere"}])
    assert "unknown states in transitions" in msg and "'nowhere'" in msg


def test_unreachable_state() -> None:
    msg = problems(
        states=[*BASE_S, "island"], transitions=[*BASE_T, {"trigger": "y", "source": "island", "dest": "a"}]
    )
    assert "unreachable states: ['island']" in msg


def test_open_state_with_no_way_out() -> None:
    msg = problems(
        states=[*BASE_S, "draining"],
        transitions=[*BASE_T, {"trigger": "d", "source": "b", "dest": "draining"}],
    )
    assert msg.startswith("Trainer.lifecycle: ")
    assert "states with no way out: ['draining']" in msg


def test_duplicate_trigger_source_pair_also_through_a_group() -> None:
    msg = problems(transitions=[*BASE_T, {"trigger": "go", "source": "a", "dest": "end"}])
    assert """duplicate trigger/source pairs: ["go from 'a'"]""" in msg
    with pytest.raises(DefinitionError, match="terminate from 'running'"):
        DEFAULT_LIFECYCLE.extend(
            transitions=[{"trigger": "terminate", "source": "running", "dest": "completed"}]
        )


def test_guard_or_hook_that_names_nothing() -> None:
    msg = problems(
        transitions=[
            {"trigger": "go", "source": "a", "dest": "b", "conditions": "is_ready", "after": 42},
            {"trigger": "stop", "source": "b", "dest": "end", "before": lambda: None},
        ]
    )
    assert """not names (pass the function itself): ["go conditions: 'is_ready'"]""" in msg
    assert "name nothing callable: ['go after: 42']" in msg
    assert "must accept the model as first argument" in msg


def test_no_initial_state() -> None:
    assert "initial state is not declared: ['zero']" in problems(initial="zero")
    assert "no states declared" in problems(states=[], transitions=[], initial="a")


def test_final_state_with_a_way_out_and_group_as_destination() -> None:
    msg = problems(
        states=["a", {"name": "g", "children": ["b"]}, {"name": "end", "final": True}],
        transitions=[
            *BASE_T,
            {"trigger": "back", "source": "end", "dest": "a"},
            {"trigger": "to_g", "source": "a", "dest": "g"},
        ],
    )
    assert "final states with transitions out" in msg
    assert "must end in a state, not a group" in msg


def test_every_offender_named_in_one_error() -> None:
    msg = problems(
        states=[*BASE_S, "island", "sink"],
        transitions=[
            *BASE_T,
            {"trigger": "s", "source": "b", "dest": "sink"},
            {"trigger": "bad", "source": "a", "dest": "zz"},
        ],
    )
    for part in ("unknown states", "unreachable states: ['island']", "no way out: ['island', 'sink']"):
        assert part in msg


def test_unknown_keys_and_routes() -> None:
    msg = problems(
        transitions=[
            {"trigger": "go", "source": "a", "dest": "b", "condition": []},
            {"trigger": "stop", "source": "b", "dest": "end", "route": "purple"},
        ]
    )
    assert "unknown keys in transition" in msg and "routes must be one of" in msg


def test_default_lifecycle_matches_the_design() -> None:
    lc = DEFAULT_LIFECYCLE
    table = {(r.source, r.trigger): r.dest for r in lc.routes()}
    assert table == {
        ("initial", "activate"): "ready",
        ("initial", "disable"): "disabled",
        ("disabled", "enable"): "ready",
        ("ready", "start"): "running",
        ("running", "complete"): "completed",
        ("running", "suspend"): "intermitted",
        ("intermitted", "resume"): "running",
        **{
            (s, "terminate"): "terminated" for s in ("initial", "ready", "running", "disabled", "intermitted")
        },
    }
    assert lc.group_path("ready") == ("open", "notRunning", "notStarted")
    assert lc.group_path("intermitted") == ("open", "notRunning", "suspended")
    assert lc.group_path("running") == ("open",)
    assert lc.group_path("completed") == ("closed",)
    assert lc.final_states == {"completed", "terminated"}
    # terminate is declared once, from the group
    assert [t.source for t in lc.transitions if t.trigger == "terminate"] == [("open",)]


def test_extend_and_with_guard() -> None:
    def gpu_free(model: Any, **kw: Any) -> bool:
        return bool(getattr(model, "gpu", False))

    lc = DEFAULT_LIFECYCLE.extend(
        states={"open": ["draining"]},
        transitions=[
            {"trigger": "drain", "source": "running", "dest": "draining"},
            {"trigger": "complete", "source": "draining", "dest": "completed"},
        ],
    ).with_guard("start", conditions=gpu_free)
    assert lc.group_path("draining") == ("open",)
    assert "terminate" in lc.allowed("draining")  # grafted into 'open', so terminate reaches it

    class M:
        _state = "ready"
        gpu = False

    m = M()
    with pytest.raises(GuardRejected) as info:
        lc.fire(m, "start")
    assert info.value.guard.endswith("gpu_free") and m._state == "ready"
    assert "refused by guard" in str(info.value)
    m.gpu = True
    assert lc.fire(m, "start") == "running"
    with pytest.raises(DefinitionError, match="names no transition"):
        lc.with_guard("fly", conditions=gpu_free)
    with pytest.raises(DefinitionError, match="groups that do not exist"):
        lc.extend(states={"nogroup": ["x"]})


def test_refusal_message_names_state_trigger_and_allowed() -> None:
    class M:
        _state = "completed"
        path = "app/trainer"

    with pytest.raises(TransitionNotAllowed) as info:
        DEFAULT_LIFECYCLE.fire(M(), "suspend")
    assert str(info.value) == (
        "app/trainer is 'completed'; 'suspend' is not allowed there (allowed: none — completed is final)"
    )
    assert (info.value.system, info.value.state, info.value.trigger) == (
        "app/trainer",
        "completed",
        "suspend",
    )
