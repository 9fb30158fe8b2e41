"""An app for hard time limit tests: thread-run handlers that overrun their timeout. Every run
appends `<job id> <attempt> <boot> <tag>` to the file named by `TASKYARD_TEST_RUNLOG`, where
`<boot>` tells apart processes (and a process from itself after it restarts in place).
"""

from __future__ import annotations

import asyncio
import os
import time

from taskyard import JobTimeoutError, Taskyard

#: Distinct for every start of the process, including an exec in place (same pid).
BOOT = time.time_ns()


def build(backend: str | None = None) -> Taskyard:
    """The app on `backend` (default: TASKYARD_BACKEND)."""
    app = Taskyard(backend)
    app.task("hang", timeout=1)(hang)
    app.task("spin", timeout=1)(spin)
    app.task("quick")(quick)
    app.task("hold")(hold)
    return app


def _log(ctx, tag: str) -> None:
    with open(os.environ["TASKYARD_TEST_RUNLOG"], "a") as f:
        f.write(f"{ctx.job.id} {ctx.attempt} {BOOT} {tag}\n")


def hang(payload: dict, ctx) -> None:
    """Blocked in C (`time.sleep`) far past its timeout: its thread cannot be stopped."""
    _log(ctx, "start")
    time.sleep(float(payload.get("seconds", 60)))
    _log(ctx, "woke")


def spin(payload: dict, ctx) -> None:
    """A pure-Python busy loop: stopped by the exception raised in its thread."""
    _log(ctx, "start")
    try:
        while True:
            pass
    except JobTimeoutError:
        _log(ctx, "stopped")
        raise


def quick(payload: dict, ctx) -> int:
    _log(ctx, "run")
    return BOOT


async def hold(payload: dict, ctx) -> int:
    """Long on its first run (so a recycling worker holds it and hands it back), quick after."""
    try:
        with open(os.environ["TASKYARD_TEST_RUNLOG"]) as f:
            ran_before = any(line.startswith(f"{ctx.job.id} ") for line in f)
    except FileNotFoundError:
        ran_before = False
    _log(ctx, "start")
    if not ran_before:
        await asyncio.sleep(float(payload.get("seconds", 60)))
    _log(ctx, "done")
    return BOOT


app = build()
