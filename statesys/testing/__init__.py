"""Property-testing kit: prove that your systems only ever make legal moves.

The kit checks, after every step, the invariants statesys promises (every observed
change is a legal transition; a parent's state is its policy applied to its
children; nothing leaves a closed state; the events are exactly the observed
changes, in order; ``prepare`` succeeds before any ``main`` and at most once;
``shutdown`` and ``teardown`` run at most once, and ``teardown`` for every
terminated system; no hook runs once a system is closed; guards are asked on every
path; a refused trigger changes nothing) plus any invariant of yours.  It finds
sequences two ways: an exhaustive explorer (certain, for the lifecycle's skeleton
and small trees) and a hypothesis state machine (data, guards, interleavings).
A failure prints a short script that replays it.

Walkthrough: a trainer that may only start with a GPU.

>>> from statesys import DEFAULT_LIFECYCLE, System
>>> from statesys.testing import explore, lifecycle_test
>>> def has_gpu(trainer, **kwargs):
...     return trainer.gpus > 0
>>> GUARDED = DEFAULT_LIFECYCLE.with_guard("start", conditions=has_gpu, name="guarded")
>>> class Trainer(System, lifecycle=GUARDED):
...     gpus: int = 0
...     def prepare(self, gpus: int = 1, **kwargs):
...         self.gpus = gpus
...     async def main(self, ctx):
...         while not ctx.stopping:
...             await ctx.asleep(3600)

Explore every configuration, preparing with no GPU and with two; the guard refuses
``start`` in the first case, which is a legal refusal:

>>> report = explore(Trainer, arguments={"activate": [{"gpus": 0}, {"gpus": 2}]})
>>> report.ok, sorted(report.missing_transitions)
(True, [])

State your own rule as an invariant.  A lifecycle that adds a second way to run
without the guard breaks it, and the explorer gives the shortest trace:

>>> def running_means_a_gpu(trainer):
...     assert trainer.state != "running" or trainer.gpus > 0, f"running with {trainer.gpus} GPUs"
>>> WARM = GUARDED.extend(transitions=[{"trigger": "warm_start", "source": "ready", "dest": "running"}])
>>> class WarmTrainer(Trainer, lifecycle=WARM):
...     pass
>>> report = explore(WarmTrainer, arguments={"activate": [{"gpus": 0}, {"gpus": 2}]},
...                  invariants=[running_means_a_gpu])
>>> [str(step) for step in report.counterexample.steps]
['activate(gpus=0)', 'warm_start()']
>>> print(report.counterexample.message)
invariant running_means_a_gpu failed: running with 0 GPUs

In a test module, one line runs both the state machine and the explorer:

>>> Trainers = lifecycle_test(Trainer, arguments={"activate": [{"gpus": 0}, {"gpus": 2}]})
>>> Trainers.invariant(running_means_a_gpu)  # or use it as a decorator
<function running_means_a_gpu at ...>
>>> TestTrainer = Trainers.TestCase  # collected by pytest or unittest

Strategies give the same sequences to your own ``@given`` tests:

>>> from hypothesis import given
>>> from statesys.testing import check_steps, legal_sequences
>>> @given(legal_sequences(GUARDED, max_len=8, arguments={"activate": [{"gpus": 0}, {"gpus": 2}]}))
... def test_sequences(steps):
...     check_steps(Trainer, steps, invariants=[running_means_a_gpu])
>>> test_sequences()

The pytest plugin adds ``--statesys-depth`` (raise the exploration depth), the
``statesys_loop`` / ``statesys_run`` fixtures, and a "statesys replay script"
section in failure reports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._explore import Counterexample, Exploration, default_depth, explore
    from ._machine import SystemMachine, lifecycle_test
    from ._policy import PolicyReport, check_policy
    from ._script import Harness, InvariantViolation, Step, check_steps, settle
    from ._strategies import (
        causes,
        legal_sequences,
        sequences_with_one_illegal_step,
        transition_tour,
        trigger_arguments,
    )

__all__ = [
    "Counterexample",
    "Exploration",
    "Harness",
    "InvariantViolation",
    "PolicyReport",
    "Step",
    "SystemMachine",
    "causes",
    "check_policy",
    "check_steps",
    "default_depth",
    "explore",
    "legal_sequences",
    "lifecycle_test",
    "sequences_with_one_illegal_step",
    "settle",
    "transition_tour",
    "trigger_arguments",
]

# Names load on first use: the pytest plugin imports this package in every session
# where statesys is installed, and hypothesis is only in the ``testing`` extra.
_WHERE = {
    "Counterexample": "._explore",
    "Exploration": "._explore",
    "default_depth": "._explore",
    "explore": "._explore",
    "SystemMachine": "._machine",
    "lifecycle_test": "._machine",
    "PolicyReport": "._policy",
    "check_policy": "._policy",
    "Harness": "._script",
    "InvariantViolation": "._script",
    "Step": "._script",
    "check_steps": "._script",
    "settle": "._script",
    "causes": "._strategies",
    "legal_sequences": "._strategies",
    "sequences_with_one_illegal_step": "._strategies",
    "transition_tour": "._strategies",
    "trigger_arguments": "._strategies",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'statesys.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
