"""What each dashboard page shows: reads through the app, the backend and the service manager."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from taskyard.core.coverage import WORKER_LIVE_SECONDS
from taskyard.core.job import AttemptError, Job, JobFilter, JobStatus
from taskyard.core.names import NAME_PATTERN
from taskyard.core.search import SEARCH_LIMIT
from taskyard.core.workflow import step_base
from taskyard.http.api.alerts import alerts_of
from taskyard.http.api.leaders import leaders_out
from taskyard.http.api.queues import list_queues
from taskyard.http.api.schemas import ID_PATTERN
from taskyard.http.api.services import services_out
from taskyard.http.api.tasks import coverage_of
from taskyard.http.dashboard.charts import (
    BREAKDOWNS,
    RANGES,
    depth_chart,
    latency_chart,
    outcome_chart,
    palette,
    series_key,
    window,
)
from taskyard.http.dashboard.history import ServiceHistory
from taskyard.http.dashboard.schedule_rows import schedule_row
from taskyard.services.worker import Worker

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = (
    "SINCE", "attempt_restarts", "chart_view", "job_filter_of", "job_filter_params", "job_page", "jobs_page",
    "jobs_url", "overview_page", "schedules_page",
    "services_page", "unclaimable_tasks", "workers_page",
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
#: Running jobs the workers page details (the rest are listed by id).
RUNNING_SHOWN = 100


def _clean(value: str | None, pattern: re.Pattern[str]) -> str | None:
    """A query value that matches `pattern`, else None (a bad filter shows everything)."""
    return value if value and pattern.fullmatch(value) else None


async def unclaimable_tasks(app: Any) -> list[Any]:
    """Tasks whose waiting jobs no live worker knows (the overview's and queues' warning)."""
    return [c for c in await coverage_of(app) if c.is_unclaimable]


def chart_view(params: dict[str, str]) -> tuple[str, str]:
    """The overview's `range` and `by` query values, checked (a ValueError names the bad one)."""
    rng, by = params.get("range", "1h"), params.get("by", "queue")
    if rng not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}, not {rng!r}")
    if by not in BREAKDOWNS:
        raise ValueError(f"by must be one of {', '.join(BREAKDOWNS)}, not {by!r}")
    return rng, by


async def overview_page(ctx: HttpContext, rng: str = "1h", by: str = "queue") -> dict[str, Any]:
    """Cards, the four charts over range `rng` broken down `by` queue or task, and the queue
    table. The cards' hour counts come from the same statistics as the charts."""
    app = ctx.app
    now = app.clock.now()
    queues = await list_queues(app)
    win = window(rng, now)
    hour_start = (now - timedelta(minutes=59)).replace(second=0, microsecond=0)
    if win.step == timedelta(minutes=1):
        rows = await app.backend.stats_read(since=min(win.since, hour_start))
        hour = [r for r in rows if r.minute >= hour_start]
    else:  # summed into the chart's bins by the backend; the cards read the hour apart
        rows = await app.backend.stats_read(since=win.since, bin_minutes=win.step // timedelta(minutes=1))
        hour = await app.backend.stats_read(since=hour_start)
    depth_rows = await app.backend.stats_read_depth(since=win.since)
    total = {s.value: sum(q.counts[s.value] for q in queues) for s in JobStatus}
    completed, failed = sum(r.completed for r in hour), sum(r.failed for r in hour)
    workers = await app.backend.workers_list()
    keys = [r.queue for r in depth_rows] if by == "queue" else []
    colours = palette(keys + [series_key(r, by) for r in rows])
    return {
        "page_title": "Overview",
        "now": now,
        "queues": queues,
        "cards": [
            ("waiting", total["pending"], "info", "pending jobs now"),
            ("scheduled", total["scheduled"], "", "jobs waiting for their run time now"),
            ("running", total["running"], "info", "jobs running now"),
            ("completed · 1h", completed, "ok", "jobs that completed in the last hour"),
            # Two different numbers: jobs that ended failed in the hour (since retried or
            # pruned included) and jobs in the failed status now (of any age).
            ("ended failed · 1h", failed, "bad" if failed else "",
             "jobs that ended failed in the last hour, including those retried or pruned since"),
            ("failed now", total["failed"], "bad" if total["failed"] else "",
             "jobs in the failed status now, whenever they failed"),
            ("workers", len(workers), "", "registered workers"),
        ],
        "alerts": alerts_of(ctx.manager),
        "unclaimable": await unclaimable_tasks(app),
        "ranges": [(k, label) for k, (label, _, _) in RANGES.items()],
        "range": rng,
        "by": by,
        "charts": [
            outcome_chart("completed", win, rows, by, colours),
            outcome_chart("failed", win, rows, by, colours),
            latency_chart(win, rows),
            depth_chart(win, depth_rows, colours if by == "queue" else None),
        ],
    }


def job_filter_params(params: Mapping[str, str]) -> dict[str, str | None]:
    """The jobs views' filters from a query string or form, each valid or None (a bad value
    shows everything rather than an error): queue, task, status, since, q."""
    status = params.get("status") or None
    since = params.get("since", "")
    q = (params.get("q") or "").strip()
    return {
        "queue": _clean(params.get("queue"), _NAME),
        "task": _clean(params.get("task"), _NAME),
        "status": status if status in {s.value for s in JobStatus} else None,
        "since": since if since in SINCE else "",
        "q": q[:SEARCH_LIMIT] if len(q) >= 3 else None,
    }


def job_filter_of(f: Mapping[str, str | None], now: datetime) -> JobFilter:
    """The core filter of `job_filter_params`' result at `now`."""
    age = SINCE[f["since"] or ""][1]
    return JobFilter(
        queue=f["queue"], task=f["task"], status=JobStatus(f["status"]) if f["status"] else None,
        created_after=now - age if age else None, q=f["q"],
    )


def jobs_url(f: Mapping[str, str | None], **extra: str) -> str:
    """The shareable address of a jobs view: its filters in the query string."""
    query = urlencode({**{k: v for k, v in f.items() if v}, **extra})
    return f"/jobs?{query}" if query else "/jobs"


async def jobs_page(ctx: HttpContext, params: Mapping[str, str]) -> dict[str, Any]:
    """Filtered, searchable job list with status tabs (counts of the queue, or of all),
    a link to the next page, and the last bulk action's report."""
    app = ctx.app
    now = app.clock.now()
    f = job_filter_params(params)
    short = bool((params.get("q") or "").strip()) and f["q"] is None
    job_filter = job_filter_of(f, now)
    page = await app.backend.jobs_list(
        filter=job_filter, limit=PAGE_SIZE, cursor=_clean(params.get("cursor"), _ID))
    queues = await list_queues(app)
    counts = {s.value: sum(q.counts[s.value] for q in queues if f["queue"] in (None, q.name)) for s in JobStatus}
    tabs = [("all", None, sum(counts.values()))] + [(s.value, s.value, counts[s.value]) for s in JobStatus]
    bulk = params.get("bulk")
    return {
        "page_title": "Jobs",
        "jobs": page.jobs,
        "f": f,
        "q_text": (params.get("q") or "")[:SEARCH_LIMIT],
        "q_too_short": short,
        "tabs": [(label, jobs_url({**f, "status": value}), n, value == f["status"]) for label, value, n in tabs],
        "next_url": jobs_url(f, cursor=page.next_cursor) if page.next_cursor else None,
        "count_url": "/jobs/count?" + urlencode({k: v for k, v in f.items() if v}),
        "statuses": [s.value for s in JobStatus],
        "queue_names": sorted({q.name for q in queues}),
        "task_names": sorted(app.tasks),
        "since_options": [(k, label) for k, (label, _) in SINCE.items()],
        "bulk_report": (bulk, params.get("n_done", "0"), params.get("n_skipped", "0"))
        if bulk in ("retry", "cancel", "delete") else None,
        "now": now,
    }


#: Errors a rescue records: the lost attempt runs again under the same number.
_RESCUE_ERRORS = frozenset({"LeaseExpired", "WorkerLost"})


def _restarted(before: AttemptError, run: int) -> bool:
    """The run numbered `run`, after the error `before`, follows a manual retry (which resets
    the count): a failure is followed by the next number, a rescue by the same one again."""
    expected = before.attempt if before.type in _RESCUE_ERRORS else before.attempt + 1
    return run < expected


def attempt_restarts(job: Job) -> list[bool]:
    """For each of `job.errors` (oldest first): True when the job was retried manually after
    that error, so the attempts after it are counted from 1 again. Derived from the attempt
    numbers (a manual retry resets them to 0; the store keeps no record of the retry itself)."""
    errors = job.errors
    marks = [_restarted(e, nxt.attempt) for e, nxt in itertools.pairwise(errors)]
    if errors:
        last = errors[-1]
        ran_since = job.started_at is not None and job.started_at > last.at
        marks.append(_restarted(last, job.attempt if ran_since else job.attempt + 1))
    return marks


async def job_page(ctx: HttpContext, job: Any) -> dict[str, Any]:
    """One job in full; each error paired with whether a manual retry followed it."""
    times = [
        ("created", job.created_at),
        ("run at", job.run_at),
        ("started", job.started_at),
        ("finished", job.finished_at),
        ("lease expires", job.lease_expires_at),
    ]
    base, index = step_base(job.step or "")
    return {
        "page_title": f"Job {job.id}",
        "job": job,
        "map_base": base if index is not None else None,
        "map_index": index,
        "times": [(label, value) for label, value in times if value is not None],
        "attempts": list(zip(job.errors, attempt_restarts(job), strict=True)),
        "now": ctx.app.clock.now(),
    }


async def schedules_page(ctx: HttpContext) -> dict[str, Any]:
    """Schedules with their next fires, last fire and its job, missed fires and every reason
    one cannot fire (no scheduler leading, a task this app cannot draft) or its jobs would
    wait (no live worker knows the task, its queue paused); and who leads the scheduler."""
    app = ctx.app
    await app.open()
    now = app.clock.now()
    live = [w for w in await app.backend.workers_list()
            if (now - w.last_heartbeat).total_seconds() < WORKER_LIVE_SECONDS]
    known = {task for w in live for task in w.tasks}
    lease = next((row for row in await leaders_out(ctx) if row.lease == "scheduler"), None)
    led = lease is not None and lease.holder is not None and (lease.expires_at is None or lease.expires_at > now)
    paused = {q.name for q in await list_queues(app) if q.paused}
    rows = [await schedule_row(app, s, now, scheduler_leads=led, known=known, paused=paused)
            for s in await app.schedules.alist()]
    return {
        "page_title": "Schedules",
        "schedules": rows,
        "unrunnable": sorted({r.schedule.task for r in rows if r.schedule.task not in known}),
        "has_workers": bool(live),
        "scheduler_leads": led,
        "scheduler_lease": lease if led else None,
        "now": now,
    }


async def services_page(ctx: HttpContext, history: ServiceHistory | None = None) -> dict[str, Any]:
    """Services of this process with metrics, their recent status changes, and who leads
    each leader-only duty."""
    manager = ctx.manager
    return {
        "history": {s.id: history.of(s.id) for s in services_out(manager)} if history else {},
        "page_title": "Services",
        "services": services_out(manager),
        # A worker's runs are jobs: their failures are the jobs', not the service's own.
        "job_runners": {e.id for e in manager.services() if isinstance(e.service, Worker)} if manager else set(),
        "leaders": await leaders_out(ctx),
        "has_manager": ctx.manager is not None,
        "now": ctx.app.clock.now(),
    }


async def workers_page(ctx: HttpContext) -> dict[str, Any]:
    """Registered workers and the jobs each is running (task, attempt, progress)."""
    workers = await ctx.app.backend.workers_list()
    running = {}
    for job_id in [j for w in workers for j in w.current_jobs][:RUNNING_SHOWN]:
        job = await ctx.app.aget_job(job_id)
        if job is not None:
            running[job_id] = job
    return {
        "page_title": "Workers",
        "workers": workers,
        "running": running,
        "now": ctx.app.clock.now(),
    }
