"""The core imports and works without any optional extra installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys

    class Block:  # as if the extras were not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"graphviz", "rich", "hypothesis", "psutil", "statemachine"}:
                raise ImportError(f"{name} is not installed")
            return None

    sys.meta_path.insert(0, Block())
    import statesys
    from statesys._demo import build_app

    app = build_app([0.05, 0.02], executor="process")
    assert statesys.run(app) == "completed", app.state
    print("ok", sorted(m for m in sys.modules if m.split(".")[0] in {"graphviz", "rich", "hypothesis"}))
    """
)


def test_core_runs_a_process_tree_without_extras() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok []"
