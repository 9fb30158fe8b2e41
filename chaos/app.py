"""The chaos app: a normal taskyard app whose handlers append start/end events to a history.

`--app chaos.app:app` is version 1; `--app chaos.app:app_v2` is version 2, which adds a task
and a schedule (the rolling-deploy scenario runs both side by side). Handlers sleep rather
than burn CPU (the suite shares two cores), and each returns `{attempt, pid, token}` so the
checker can tell which attempt's write the store kept.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from chaos import history
from taskyard import Retry, Taskyard
from taskyard.context import JobContext
from taskyard.core.retry import exponential

__all__ = (
    "EXPECTED_FAILURES",
    "RETRIES",
    "SCHEDULES",
    "V2_SCHEDULES",
    "app",
    "app_v2",
    "build",
)

#: Retry policy of each task (the checker compares attempts and backoff with it).
RETRIES: dict[str, Retry] = {
    "chaos.work": Retry(attempts=8, backoff=[0.2]),
    "chaos.flaky": Retry(attempts=4, backoff=exponential(0.5)),
    "chaos.default": Retry(),
    "chaos.crash": Retry(attempts=4, backoff=[0.2]),
    "chaos.hang": Retry(attempts=3, backoff=[0.5]),
    "chaos.huge": Retry(attempts=2, backoff=[0.2]),
    "chaos.poison": Retry(attempts=3, backoff=[0.2]),
    "chaos.unique": Retry(attempts=8, backoff=[0.2]),
    "chaos.tick": Retry(attempts=8, backoff=[0.2]),
    "chaos.v2": Retry(attempts=8, backoff=[0.2]),
    "chaos.iso_hang": Retry(attempts=3, backoff=[0.5]),
    "chaos.iso_leak": Retry(attempts=3, backoff=[0.5]),
    "chaos.iso_crash": Retry(attempts=3, backoff=[0.2]),
    "chaos.iso_poison": Retry(attempts=3, backoff=[0.2]),
    "chaos.thread_spin": Retry(attempts=3, backoff=[0.5]),
}
#: Tasks whose jobs are meant to end `failed`: the executor refuses a 2 MiB result, and a job
#: that kills its process on every run must end failed, not loop.
EXPECTED_FAILURES = frozenset({"chaos.huge", "chaos.poison", "chaos.iso_poison"})
#: Every-second schedules of version 1: name -> misfire policy.
SCHEDULES = {"chaos-all": "all", "chaos-once": "once", "chaos-skip": "skip"}
#: What version 2 adds.
V2_SCHEDULES = {"chaos-v2-all": "all"}
#: Seconds `chaos.hang` may run before its timeout.
HANG_TIMEOUT = 1.0
#: MB a `chaos.iso_leak` child may hold before it is killed.
LEAK_LIMIT_MB = 120


class Work(BaseModel):
    """Payload of most chaos tasks: a number and how long to sleep."""

    n: int
    sleep: float = 0.0
    fail_times: int = 0
    key: str = ""


Handler = Callable[[Any, JobContext], Awaitable[Any]]


def recorded(fn: Handler) -> Handler:
    """Wrap a handler so that each run appends `start` and `end` events to the history."""

    @functools.wraps(fn)
    async def run(payload: Any, ctx: JobContext) -> Any:
        job = ctx.job
        base = {"job": job.id, "task": job.task, "attempt": job.attempt, "token": job.lease_token,
                "unique_key": job.unique_key}
        history.record("start", **base)
        try:
            result = await fn(payload, ctx)
        except asyncio.CancelledError:
            history.record("end", ok=False, error="cancelled", **base)
            raise
        except Exception as exc:
            history.record("end", ok=False, error=type(exc).__name__, **base)
            raise
        history.record("end", ok=True, **base)
        return result

    return run


def recorded_sync(fn: Callable[[Any, JobContext], Any]) -> Callable[[Any, JobContext], Any]:
    """`recorded` for a plain `def` handler (run in a thread or a child process). A handler
    killed with its child process records no end: the checker reads that end from the error
    the worker stored for the attempt."""

    @functools.wraps(fn)
    def run(payload: Any, ctx: JobContext) -> Any:
        job = ctx.job
        base = {"job": job.id, "task": job.task, "attempt": job.attempt, "token": job.lease_token,
                "unique_key": job.unique_key}
        history.record("start", **base)
        try:
            result = fn(payload, ctx)
        except BaseException as exc:  # JobTimeoutError and Cancel included
            history.record("end", ok=False, error=type(exc).__name__, **base)
            raise
        history.record("end", ok=True, **base)
        return result

    return run


def _first_run(ctx: JobContext, what: str) -> bool:
    """True the first time this job gets here (a marker file beside the histories)."""
    directory = os.environ.get(history.HISTORY_DIR_ENV)
    if not directory:
        return False
    try:
        os.close(os.open(os.path.join(directory, f"{what}-{ctx.job.id}"), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def _result(ctx: JobContext) -> dict[str, Any]:
    return {"attempt": ctx.attempt, "pid": os.getpid(), "token": ctx.job.lease_token}


async def work(payload: Work, ctx: JobContext) -> dict[str, Any]:
    """Sleep, then return; fails its first `fail_times` attempts."""
    await asyncio.sleep(payload.sleep)
    if ctx.attempt <= payload.fail_times:
        raise RuntimeError(f"planned failure of attempt {ctx.attempt}")
    return _result(ctx)


async def crash(payload: Work, ctx: JobContext) -> dict[str, Any]:
    """Kills its own process (`os._exit`) the first time it runs; succeeds afterwards.

    "First time" is a marker file beside the histories, not `ctx.attempt`: a lease lost to a
    crash need not count as an attempt, and a job crashing on every run is a poison pill,
    another scenario."""
    directory = os.environ.get(history.HISTORY_DIR_ENV)
    if directory:
        try:
            os.close(os.open(os.path.join(directory, f"crashed-{ctx.job.id}"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return _result(ctx)
        os._exit(17)
    return _result(ctx)


async def poison(payload: Work, ctx: JobContext) -> dict[str, Any]:
    """A poison pill: kills its own process on every run."""
    os._exit(17)


async def hang(payload: Work, ctx: JobContext) -> dict[str, Any]:
    """Hangs past its timeout on the first attempt; succeeds afterwards."""
    if ctx.attempt == 1:
        await asyncio.sleep(HANG_TIMEOUT * 30)
    return _result(ctx)


async def huge(payload: Work, ctx: JobContext) -> dict[str, Any]:
    """Returns a 2 MiB result, over the 1 MiB limit: the job must end failed, the worker live."""
    return {**_result(ctx), "padding": "x" * (2 * 1024 * 1024)}


def iso_hang(payload: Work, ctx: JobContext) -> dict[str, Any]:
    """In a child process: blocks in C past its timeout on the first attempt (the worker kills
    the child); returns afterwards."""
    if ctx.attempt == 1:
        time.sleep(HANG_TIMEOUT * 30)
    return _result(ctx)


def iso_leak(payload: Work, ctx: JobContext) -> dict[str, Any]:
    """In a child process: grows far past its memory limit on the first attempt (the worker
    kills the child: MemoryLimitExceeded); returns afterwards."""
    if ctx.attempt == 1:
        hoard = []
        for _ in range(200):  # up to 2 GB, 10 MB at a time; killed long before
            hoard.append(bytearray(10 * 1024 * 1024))
            time.sleep(0.02)
    return _result(ctx)


def iso_crash(payload: Work, ctx: JobContext) -> dict[str, Any]:
    """In a child process: segfaults the first time it runs; returns afterwards."""
    if _first_run(ctx, "segv"):
        _segfault()
    return _result(ctx)


def iso_poison(payload: Work, ctx: JobContext) -> dict[str, Any]:
    """In a child process: segfaults on every run (ends failed after max_rescues)."""
    _segfault()
    return _result(ctx)


def _segfault() -> None:
    ctypes.string_at(0)  # SIGSEGV (history lines are written unbuffered)


def thread_spin(payload: Work, ctx: JobContext) -> dict[str, Any]:
    """In a worker thread: spins in pure Python past its timeout on the first attempt (the
    worker raises JobTimeoutError inside the thread); returns afterwards."""
    if ctx.attempt == 1:
        deadline = time.monotonic() + HANG_TIMEOUT * 30
        while time.monotonic() < deadline:
            pass
    return _result(ctx)


async def tick(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The schedules' task (raw JSON payload: `recorded` keeps the wrapped signature)."""
    return _result(ctx)


def build(version: int = 1, backend: str | None = None) -> Taskyard:
    """The chaos app of `version` (1 or 2) on `backend` (default: TASKYARD_BACKEND)."""
    app = Taskyard(backend)
    app.task("chaos.work", retry=RETRIES["chaos.work"])(recorded(work))
    app.task("chaos.flaky", retry=RETRIES["chaos.flaky"])(recorded(work))
    app.task("chaos.default")(recorded(work))
    app.task("chaos.crash", retry=RETRIES["chaos.crash"])(recorded(crash))
    app.task("chaos.hang", retry=RETRIES["chaos.hang"], timeout=HANG_TIMEOUT)(recorded(hang))
    app.task("chaos.huge", retry=RETRIES["chaos.huge"])(recorded(huge))
    app.task("chaos.poison", retry=RETRIES["chaos.poison"])(recorded(poison))
    app.task("chaos.unique", retry=RETRIES["chaos.unique"], unique="u:{key}")(recorded(work))
    app.task("chaos.tick", queue="ticks", retry=RETRIES["chaos.tick"])(recorded(tick))
    slow = HANG_TIMEOUT * 5  # long enough for a normal run of a child's job
    app.task("chaos.iso_hang", retry=RETRIES["chaos.iso_hang"], isolation="process",
             timeout=HANG_TIMEOUT)(recorded_sync(iso_hang))
    app.task("chaos.iso_leak", retry=RETRIES["chaos.iso_leak"], isolation="process", timeout=slow,
             memory_limit=LEAK_LIMIT_MB)(recorded_sync(iso_leak))
    app.task("chaos.iso_crash", retry=RETRIES["chaos.iso_crash"], isolation="process",
             timeout=slow)(recorded_sync(iso_crash))
    app.task("chaos.iso_poison", retry=RETRIES["chaos.iso_poison"], isolation="process",
             timeout=slow)(recorded_sync(iso_poison))
    app.task("chaos.thread_spin", retry=RETRIES["chaos.thread_spin"],
             timeout=HANG_TIMEOUT)(recorded_sync(thread_spin))
    schedules = dict(SCHEDULES)
    if version >= 2:
        app.task("chaos.v2", retry=RETRIES["chaos.v2"])(recorded(work))
        schedules.update(V2_SCHEDULES)
    for name, policy in schedules.items():
        app.schedule(name, task="chaos.tick", cron="* * * * * *", misfire=policy,
                     misfire_cap=120, payload={"schedule": name})
    return app


app = build(1)
app_v2 = build(2)
