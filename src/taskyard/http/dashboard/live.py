"""Server-sent events for the dashboard: every few seconds a snapshot of the job counts and
of the jobs a page shows (status, attempt, progress), so pages update in place without
re-fetching themselves; the script re-fetches a page's fragment only when the counts move."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from taskyard.core.job import JobStatus
from taskyard.http.api.schemas import ID_PATTERN

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("MAX_JOBS", "STREAM_SECONDS", "job_ids", "snapshot", "stream")

_ID = re.compile(ID_PATTERN)
#: Jobs one stream follows at most.
MAX_JOBS = 100
#: A stream ends after this long (the browser reconnects by itself), so none outlives a
#: server's shutdown by more than one interval and no connection is held forever.
STREAM_SECONDS = 300.0


def job_ids(value: str | None) -> list[str]:
    """The `jobs` query value: comma-separated job ids (ValueError names a bad one)."""
    ids = [part for part in (value or "").split(",") if part]
    if len(ids) > MAX_JOBS:
        raise ValueError(f"jobs lists {len(ids)} ids; at most {MAX_JOBS}")
    for job_id in ids:
        if not _ID.fullmatch(job_id):
            raise ValueError(f"jobs: {job_id[:40]!r} is not a job id")
    return list(dict.fromkeys(ids))


async def snapshot(ctx: HttpContext, ids: list[str]) -> dict[str, Any]:
    """Counts by status over every queue, per queue, and the state of each job in `ids`
    (a job that no longer exists is reported as null)."""
    counts = await ctx.app.acounts()
    totals = {s.value: sum(q.get(s.value, 0) for q in counts.values()) for s in JobStatus}
    jobs: dict[str, Any] = {}
    for job_id in ids:
        job = await ctx.app.aget_job(job_id)
        jobs[job_id] = None if job is None else {
            "status": job.status.value,
            "attempt": job.attempt,
            "progress": None if job.progress is None else {
                "percent": job.progress.percent, "message": job.progress.message},
        }
    return {"totals": totals, "queues": counts, "jobs": jobs}


async def stream(ctx: HttpContext, ids: list[str], interval: float, is_disconnected: Any) -> AsyncIterator[str]:
    """`snapshot` events every `interval` seconds (only when something changed, with a
    comment line between as a keep-alive) until the client leaves, the server drains or
    `STREAM_SECONDS` pass."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_SECONDS
    last = None
    yield f"retry: {int(interval * 1000)}\n\n"
    while loop.time() < ends and not ctx.draining and not await is_disconnected():
        data = json.dumps(await snapshot(ctx, ids), sort_keys=True, default=str)
        yield f"event: snapshot\ndata: {data}\n\n" if data != last else ": idle\n\n"
        last = data
        await asyncio.sleep(interval)
