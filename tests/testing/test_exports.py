"""The kit's public surface is curated, pinned, and loads without hypothesis where it can."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys

import pytest

import statesys.testing


def test_exports_are_pinned() -> None:
    assert sorted(statesys.testing.__all__) == [
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
    for name in statesys.testing.__all__:
        assert getattr(statesys.testing, name) is not None
    assert set(statesys.testing.__all__) <= set(dir(statesys.testing))


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="nothing_here"):
        statesys.testing.nothing_here  # noqa: B018


def test_plugin_and_explorer_import_without_hypothesis() -> None:
    """The plugin loads in every pytest session: it must not need the ``testing`` extra."""
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import statesys.testing._plugin\n"
        "from statesys.testing import explore, settle, Step, check_policy\n"
        "from statesys import System\n"
        "assert explore(System, 4).ok\n"
        "try:\n"
        "    from statesys.testing import lifecycle_test\n"
        "except ImportError:\n"
        "    print('needs hypothesis')\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "needs hypothesis"


def test_the_walkthrough_in_the_docstring_runs() -> None:
    result = doctest.testmod(statesys.testing, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 10
    assert result.failed == 0
