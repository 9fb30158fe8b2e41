"""Helpers for testing taskyard apps: `FakeClock`, `drain()` and `assert_enqueued()`.

Typical use: build the app on `memory://`, enqueue, `await drain(app)`, assert on the jobs.
"""

from __future__ import annotations

from typing import Any

from taskyard.app import Taskyard
from taskyard.clock import FakeClock
from taskyard.core.job import Job, JobStatus
from taskyard.services.worker import Worker, WorkerConfig

__all__ = ("FakeClock", "assert_enqueued", "drain")


async def drain(
    app: Taskyard,
    *,
    queues: tuple[str, ...] | None = None,
    concurrency: int = 10,
    wait_retries: bool = False,
) -> Worker:
    """Run a burst worker until nothing is due and nothing runs; returns it (for its metrics).

    With `wait_retries`, also waits for the retries it scheduled (on the app's clock).
    """
    worker = Worker(
        app,
        WorkerConfig(
            queues=queues, concurrency=concurrency, burst=True, burst_wait_retries=wait_retries,
            poll_interval=0.05,
        ),
    )
    await worker.start()
    try:
        await worker.wait_finished()
    finally:
        await worker.stop()
    return worker


async def assert_enqueued(
    app: Taskyard,
    task: str,
    *,
    payload: Any = None,
    status: JobStatus | str | None = None,
    queue: str | None = None,
) -> Job:
    """Assert a job of `task` (with that payload / status / queue, when given) exists; return it."""
    page = await app.alist_jobs(task=task, status=status, queue=queue, limit=1000)
    for job in page.jobs:
        if payload is None or job.payload == payload:
            return job
    seen = [(j.status.value, j.payload) for j in page.jobs]
    raise AssertionError(f"no job of task {task!r} matching payload={payload!r} status={status!r}; found {seen}")
