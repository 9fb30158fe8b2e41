"""What each dashboard page shows: reads through the app, the backend and the service manager."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from taskyard.core.job import JobStatus
from taskyard.core.names import NAME_PATTERN
from taskyard.http.api.alerts import alerts_of
from taskyard.http.api.leaders import leaders_out
from taskyard.http.api.queues import list_queues
from taskyard.http.api.schemas import ID_PATTERN
from taskyard.http.api.services import services_out
from taskyard.http.api.tasks import coverage_of
from taskyard.http.dashboard.charts import DepthHistory, bar_chart, minute_series

__all__ = (
    "SINCE", "job_page", "jobs_page", "overview_page", "schedules_page", "services_page",
    "unclaimable_tasks", "workers_page",
)

_NAME = re.compile(NAME_PATTERN)
_ID = re.compile(ID_PATTERN)
#: The jobs page's "since" choices: value -> (label, age).
SINCE = {
    "": ("any time", None),
    "15m": ("last 15 minutes", timedelta(minutes=15)),
    "1h": ("last hour", timedelta(hours=1)),
    "24h": ("last day", timedelta(days=1)),
    "7d": ("last week", timedelta(days=7)),
}
PAGE_SIZE = 50


def _clean(value: str | None, pattern: re.Pattern[str]) -> str | None:
    """A query value that matches `pattern`, else None (a bad filter shows everything)."""
    return value if value and pattern.fullmatch(value) else None


async def unclaimable_tasks(app: Any) -> list[Any]:
    """Tasks whose waiting jobs no live worker knows (the overview's and queues' warning)."""
    return [c for c in await coverage_of(app) if c.is_unclaimable]


async def overview_page(ctx: Any, depth: DepthHistory) -> dict[str, Any]:
    """Cards, the three charts and the queue table."""
    app = ctx.app
    now = app.clock.now()
    queues = await list_queues(app)
    rows = await app.backend.stats_read(since=now - timedelta(minutes=60))
    minutes, completed, failed = minute_series(rows, now)
    total = {s.value: sum(q.counts[s.value] for q in queues) for s in JobStatus}
    depth.record(now, total["pending"])
    workers = await app.backend.workers_list()
    return {
        "page_title": "Overview",
        "now": now,
        "queues": queues,
        "cards": [
            ("waiting", total["pending"], "info"),
            ("scheduled", total["scheduled"], ""),
            ("running", total["running"], "info"),
            ("completed · 1h", sum(completed), "ok"),
            ("failed · 1h", sum(failed), "bad" if sum(failed) else ""),
            ("failed · total", total["failed"], "bad" if total["failed"] else ""),
            ("workers", len(workers), ""),
        ],
        "alerts": alerts_of(ctx.manager),
        "unclaimable": await unclaimable_tasks(app),
        "throughput": bar_chart("Throughput", "throughput", minutes, completed),
        "failures": bar_chart("Failures", "failures", minutes, failed),
        "depth": depth.chart(now),
    }


async def jobs_page(ctx: Any, params: dict[str, str]) -> dict[str, Any]:
    """Filtered job list with a link to the next page."""
    app = ctx.app
    now = app.clock.now()
    status = params.get("status") or None
    status = status if status in {s.value for s in JobStatus} else None
    since = params.get("since", "")
    since = since if since in SINCE else ""
    age = SINCE[since][1]
    f = {
        "queue": _clean(params.get("queue"), _NAME),
        "task": _clean(params.get("task"), _NAME),
        "status": status,
        "since": since,
    }
    page = await app.alist_jobs(
        queue=f["queue"],
        task=f["task"],
        status=status,
        created_after=now - age if age else None,
        limit=PAGE_SIZE,
        cursor=_clean(params.get("cursor"), _ID),
    )
    next_url = None
    if page.next_cursor:
        query = "&".join(f"{k}={v}" for k, v in f.items() if v)
        next_url = f"/jobs?{query}&cursor={page.next_cursor}" if query else f"/jobs?cursor={page.next_cursor}"
    queue_names = sorted({q.name for q in await list_queues(app)})
    return {
        "page_title": "Jobs",
        "jobs": page.jobs,
        "f": f,
        "next_url": next_url,
        "statuses": [s.value for s in JobStatus],
        "queue_names": queue_names,
        "task_names": sorted(app.tasks),
        "since_options": [(k, label) for k, (label, _) in SINCE.items()],
        "now": now,
    }


async def job_page(ctx: Any, job: Any) -> dict[str, Any]:
    """One job in full."""
    times = [
        ("created", job.created_at),
        ("run at", job.run_at),
        ("started", job.started_at),
        ("finished", job.finished_at),
        ("lease expires", job.lease_expires_at),
    ]
    return {
        "page_title": f"Job {job.id}",
        "job": job,
        "times": [(label, value) for label, value in times if value is not None],
        "now": ctx.app.clock.now(),
    }


async def schedules_page(ctx: Any) -> dict[str, Any]:
    """Schedules with their next three fire times."""
    book = ctx.app.schedules
    rows = []
    for schedule in await book.alist():
        fires = await book.anext_fires(schedule.name, 3) if schedule.enabled else []
        rows.append((schedule, fires))
    return {"page_title": "Schedules", "schedules": rows, "now": ctx.app.clock.now()}


async def services_page(ctx: Any) -> dict[str, Any]:
    """Services of this process with metrics, and who leads each leader-only duty."""
    return {
        "page_title": "Services",
        "services": services_out(ctx.manager),
        "leaders": await leaders_out(ctx),
        "has_manager": ctx.manager is not None,
        "now": ctx.app.clock.now(),
    }


async def workers_page(ctx: Any) -> dict[str, Any]:
    """Registered workers."""
    return {
        "page_title": "Workers",
        "workers": await ctx.app.backend.workers_list(),
        "now": ctx.app.clock.now(),
    }
