"""An app for worker fault tests. Every run appends `<job id> <attempt> <pid> <tag>` to the
file named by `TASKYARD_TEST_RUNLOG`, so a test can count how often each job ran; `hang-once`
also appends `<job id> <pid> <wall time>` of each start to `TASKYARD_TEST_STARTS`.
"""

from __future__ import annotations

import os
import time

from taskyard import Retry, Taskyard


def build(backend: str | None = None) -> Taskyard:
    """The app on `backend` (default: TASKYARD_BACKEND)."""
    app = Taskyard(backend)
    app.task("record", retry=Retry(attempts=3))(record)
    app.task("hang-first", retry=Retry(attempts=3))(hang_first)
    app.task("slow", retry=Retry(attempts=1))(slow)
    app.task("stall-first", retry=Retry(attempts=3))(stall_first)
    app.task("kill-worker", retry=Retry(attempts=3))(kill_worker)
    app.task("hang-once")(hang_once)  # no retry=: the default single attempt
    return app


def _log(ctx, tag: str) -> None:
    with open(os.environ["TASKYARD_TEST_RUNLOG"], "a") as f:
        f.write(f"{ctx.job.id} {ctx.attempt} {os.getpid()} {tag}\n")


async def record(payload: dict, ctx) -> int:
    _log(ctx, "run")
    return ctx.attempt


def hang_first(payload: dict, ctx) -> str:
    """Blocks on its first run (until the process is killed); returns once rescued."""
    _log(ctx, "start")
    if ctx.job.rescues == 0:
        time.sleep(float(payload.get("seconds", 3600)))
    _log(ctx, "done")
    return "finished"


def kill_worker(payload: dict, ctx) -> None:
    """A poison pill: every attempt SIGKILLs the worker process running it."""
    import signal

    _log(ctx, "start")
    os.kill(os.getpid(), signal.SIGKILL)


async def stall_first(payload: dict, ctx) -> str:
    """Its first run awaits for a long time (a worker frozen with SIGSTOP holds it)."""
    import asyncio

    _log(ctx, "start")
    if ctx.job.rescues == 0:
        await asyncio.sleep(float(payload.get("seconds", 3600)))
    _log(ctx, "done")
    return f"attempt {ctx.attempt}, rescues {ctx.job.rescues}"


def hang_once(payload: dict, ctx) -> str:
    """Notes when it starts; blocks on its first run (until the process is killed)."""
    with open(os.environ["TASKYARD_TEST_STARTS"], "a") as f:
        f.write(f"{ctx.job.id} {os.getpid()} {time.time():.6f}\n")
    return hang_first(payload, ctx)


async def slow(payload: dict, ctx) -> str:
    import asyncio

    _log(ctx, "start")
    await asyncio.sleep(float(payload["seconds"]))
    _log(ctx, "done")
    return "slept"


app = build()
