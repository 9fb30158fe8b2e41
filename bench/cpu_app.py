"""The CPU-bound workload of `python -m bench.cpu`: the same pure-Python handler as a thread
task and as a process task (`isolation="process"`)."""

from __future__ import annotations

from taskyard import Taskyard


def burn(payload: dict) -> int:
    """`rounds` iterations of integer arithmetic (holds the GIL throughout)."""
    total = 0
    for i in range(int(payload["rounds"])):
        total = (total * 31 + i) % 1_000_003
    return total


app = Taskyard("memory://")
app.task("burn-thread")(burn)
app.task("burn-process", isolation="process")(burn)
