"""A completed job's progress is its last report, however busy the worker: the last
`ctx.progress()` travels with the completion (before, most of 200 jobs kept 66.7 %)."""

from __future__ import annotations

import asyncio

from taskyard import JobStatus, Taskyard
from taskyard.backends.protocol import Backend
from taskyard.core.job import JobFilter
from taskyard.testing import drain

JOBS = 200


async def test_every_completed_job_under_load_shows_its_last_progress(backend: Backend) -> None:
    app = Taskyard(backend)

    @app.task("thumbs.async")
    async def thumb_async(payload: dict, ctx) -> int:
        for percent in (33.3, 66.7):
            ctx.progress(percent, f"step at {percent}")
            await asyncio.sleep(0)  # a real handler awaits I/O between steps
        ctx.progress(100, "done")
        return payload["n"]

    @app.task("thumbs.sync")
    def thumb_sync(payload: dict, ctx) -> int:  # a thread handler: reports cross threads
        for percent in (33.3, 66.7, 100):
            ctx.progress(percent, "done" if percent == 100 else f"step at {percent}")
        return payload["n"]

    await app.aenqueue_many(
        [("thumbs.async" if n % 2 else "thumbs.sync", {"n": n}) for n in range(JOBS)]
    )
    await drain(app, concurrency=50)
    page = await backend.jobs_list(filter=JobFilter(), limit=JOBS + 1)
    assert len(page.jobs) == JOBS
    assert {j.status for j in page.jobs} == {JobStatus.COMPLETED}
    stale = [j.progress for j in page.jobs if j.progress is None or j.progress.percent != 100.0]
    assert stale == [], f"{len(stale)} of {JOBS} completed jobs kept an older progress"
    assert {j.progress.message for j in page.jobs if j.progress} == {"done"}
