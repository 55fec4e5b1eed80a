"""The source design's program, rebuilt as the baseline of bench_demo.py.

Its structure: every system is a ``multiprocessing.Process`` (spawn start method,
as fork crashes it on Linux) whose state lives in a ``Manager`` dict shared by all;
``appSystem`` is itself a process that starts its subsystems, polls their states,
and derives its own; each state change is printed in the source log format.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from datetime import datetime
from typing import Any


def log(name: str, state: str) -> None:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    print(f"{stamp}\t[{name}]\tpid:{os.getpid():05d}\t{state}", flush=True)


class SleepSystem(mp.Process):
    def __init__(self, name: str, seconds: float, states: Any) -> None:
        super().__init__(name=name)
        self.seconds = seconds
        self.states = states

    def set(self, state: str) -> None:
        self.states[self.name] = state
        log(self.name, state)

    def run(self) -> None:
        self.set("ready")
        self.set("running")
        time.sleep(self.seconds)
        self.set("completed")


class AppSystem(mp.Process):
    def __init__(self, seconds: list[float], states: Any) -> None:
        super().__init__(name="appSystem")
        self.seconds = seconds
        self.states = states

    def run(self) -> None:
        ctx = mp.get_context("spawn")
        children = [SleepSystem(f"sleepSystem{i + 1}", s, self.states) for i, s in enumerate(self.seconds)]
        names = [c.name for c in children]
        procs = []
        for child in children:
            proc = ctx.Process(target=child.run, name=child.name)
            proc.start()
            procs.append(proc)
        own = "initial"
        while True:
            states = [self.states.get(n, "initial") for n in names]
            derived = (
                "completed" if all(s == "completed" for s in states)
                else "running" if all(s in ("running", "completed") for s in states)
                else "ready" if all(s != "initial" for s in states)
                else "initial"
            )
            if derived != own:
                own = derived
                log(self.name, own)
            if own == "completed":
                break
            time.sleep(0.1)
        for proc in procs:
            proc.join()


def main(seconds: list[float]) -> None:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        states = manager.dict()
        app = ctx.Process(target=AppSystem(seconds, states).run, name="appSystem")
        app.start()
        app.join()


if __name__ == "__main__":
    main([float(x) for x in sys.argv[1:]] or [5.0, 3.0])
