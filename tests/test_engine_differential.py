"""The compiled engine against transitions.Machine, the reference semantics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transitions import Machine, MachineError

from statesys import GuardRejected, Lifecycle, TransitionNotAllowed

from .strategies import Recorder, lifecycles

NAMES = ["default", "door", "draining"]


def reference_machine(lifecycle: Lifecycle) -> Any:
    """A transitions.Machine built from the same declaration, groups expanded to their states."""

    def wrap(fns: Any) -> list[Any]:
        return [lambda ev, f=f: f(ev.model, **ev.kwargs) for f in fns]

    def leaves(decls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for d in decls:
            if "children" in d:
                out.extend(leaves(d["children"]))
            else:
                out.append(
                    {
                        "name": d["name"],
                        "on_enter": wrap(d.get("on_enter", ())),
                        "on_exit": wrap(d.get("on_exit", ())),
                        "final": d.get("final", False),
                    }
                )
        return out

    states, transitions = lifecycle.declaration()
    flat = []
    for t in transitions:
        sources = [t["source"]] if isinstance(t["source"], str) else t["source"]
        expanded = [s for src in sources for s in lifecycle.groups.get(src, (src,))]
        flat.append(
            {
                "trigger": t["trigger"],
                "source": expanded,
                "dest": t["dest"],
                **{k: wrap(t.get(k, ())) for k in ("prepare", "conditions", "before", "after")},
                "unless": wrap(t.get("unless", ())),
            }
        )

    class Model:
        pass

    model = Model()
    Machine(
        model=model,
        states=leaves(states),
        transitions=flat,
        initial=lifecycle.initial,
        auto_transitions=False,
        send_event=True,
    )
    return model


class Plain:
    __slots__ = ("_state",)

    def __init__(self, state: str) -> None:
        self._state = state


def outcome_ref(model: Any, trigger: str, n: int) -> str:
    try:
        return "ok" if model.trigger(trigger, n=n) else "refused"
    except MachineError:
        return "illegal"


def outcome_ours(lc: Lifecycle, model: Plain, trigger: str, n: int) -> str:
    try:
        lc.fire(model, trigger, n=n)
    except GuardRejected:
        return "refused"
    except TransitionNotAllowed:
        return "illegal"
    return "ok"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_same_states_refusals_and_hook_calls(name: str, data: st.DataObject) -> None:
    ours_rec, ref_rec = Recorder(), Recorder()
    ours_lc, ref_lc = lifecycles(ours_rec)[name], lifecycles(ref_rec)[name]
    ref = reference_machine(ref_lc)
    ours = Plain(ours_lc.initial)
    steps = data.draw(st.lists(st.tuples(st.sampled_from(ours_lc.triggers), st.integers(0, 3)), max_size=30))
    for trigger, n in steps:
        expected = outcome_ref(ref, trigger, n)
        got = outcome_ours(ours_lc, ours, trigger, n)
        assert got == expected, (trigger, n)
        assert ours._state == ref.state
        # transitions reports the state through its own attribute; hooks saw the same states
        assert [c[0] for c in ours_rec.calls] == [c[0] for c in ref_rec.calls]
        assert [c[2] for c in ours_rec.calls] == [c[2] for c in ref_rec.calls]


def test_every_transition_of_each_lifecycle_is_exercised_by_the_reference() -> None:
    # guard the differential test against comparing two empty behaviours
    rec = Recorder()
    for lc in lifecycles(rec).values():
        ref = reference_machine(lc)
        assert ref.state == lc.initial
        route = next(iter(lc.routes()))
        assert route.trigger in lc.triggers
