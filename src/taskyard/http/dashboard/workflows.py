"""What the workflow pages show: the list of workflows, one workflow (its graph drawn by
`dag.layout` and a table of its steps), and the jobs of one mapped step. Each page is one
backend read (`workflows_list` or `workflow_get`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from taskyard.core.job import RETRYABLE_STATUSES, Job, JobStatus
from taskyard.core.workflow import Workflow, WorkflowStatus
from taskyard.errors import NotFoundError, WorkflowNotFound
from taskyard.http.api.schemas import ID_PATTERN
from taskyard.http.dashboard.dag import Group, layout, leading_status, status_counts

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("LIST_SIZE", "MAP_PAGE_SIZE", "StepRow", "duration", "map_page", "workflow_page", "workflows_page")

_ID = re.compile(ID_PATTERN)
#: Workflows a list page shows (each is read with its steps).
LIST_SIZE = 25
#: Jobs of a mapped step a page lists.
MAP_PAGE_SIZE = 50


def duration(seconds: float | None) -> str:
    """`850 ms`, `4.2 s`, `3m 05s`, `2h 10m`, or `—`."""
    if seconds is None:
        return "\u2014"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"


def _ran(job: Job, now: datetime) -> float | None:
    """How long a running or finished step ran (a released or retried one's old start is not a run)."""
    if job.started_at is None or not (job.status is JobStatus.RUNNING or job.is_finished):
        return None
    return ((job.finished_at or now) - job.started_at).total_seconds()


def _error(job: Job) -> str:
    """The last error of a step that did not complete (a completed step's old errors are noise)."""
    if not job.errors or job.status is JobStatus.COMPLETED:
        return ""
    last = job.errors[-1]
    return f"{last.type}: {last.message}"


@dataclass(frozen=True, slots=True)
class StepRow:
    """One row of a workflow's table of steps: a step, or a collapsed map's summary."""

    name: str
    href: str
    status: str
    attempts: str
    worker: str
    duration: str
    error: str
    #: The job a plain step's row follows live; None for a map.
    job_id: str | None = None
    counts: tuple[tuple[str, int], ...] = ()
    #: A plain step's attempt (updated live) and its limit.
    attempt: int = 0
    max_attempts: int = 0

    @classmethod
    def of_job(cls, job: Job, now: datetime) -> StepRow:
        return cls(
            name=job.step or job.id, href=f"/jobs/{job.id}", status=job.status.value,
            attempts=f"{job.attempt}/{job.max_attempts}", worker=job.worker_id or "",
            duration=duration(_ran(job, now)), error=_error(job), job_id=job.id,
            attempt=job.attempt, max_attempts=job.max_attempts,
        )

    @classmethod
    def of_map(cls, group: Group, workflow_id: str, now: datetime) -> StepRow:
        counts = tuple(status_counts(group.jobs))
        ran = [j for j in group.jobs if _ran(j, now) is not None]
        starts = [j.started_at for j in ran if j.started_at is not None]
        ends = [j.finished_at or now for j in ran]
        failed = [j for j in group.jobs if _error(j)]
        error = _error(max(failed, key=lambda j: j.errors[-1].at)) if failed else ""
        if len(failed) > 1:
            error += f" (and {len(failed) - 1} more)"
        workers = {j.worker_id for j in group.jobs if j.worker_id}
        return cls(
            name=f"{group.name} \u00d7{len(group.jobs)}", href=f"/workflows/{workflow_id}/steps/{group.name}",
            status=leading_status(counts), attempts=f"{sum(j.attempt for j in group.jobs)} in all",
            worker=f"{len(workers)} worker(s)" if workers else "",
            duration=duration((max(ends) - min(starts)).total_seconds() if starts else None),
            error=error, counts=counts,
        )


def _counts(wf: Workflow) -> list[tuple[str, int]]:
    return status_counts(wf.steps)


async def _read(ctx: HttpContext, workflow_id: str) -> Workflow:
    found = None
    if _ID.fullmatch(workflow_id):
        found = await (await ctx.app.backend_for_loop()).workflow_get(workflow_id=workflow_id)
    if found is None:
        raise WorkflowNotFound(workflow_id)
    return found


async def workflows_page(ctx: HttpContext, params: Mapping[str, str]) -> dict[str, Any]:
    """Workflows newest first, `LIST_SIZE` a page: name, status, step counts, times."""
    cursor = params.get("cursor")
    backend = await ctx.app.backend_for_loop()
    page = await backend.workflows_list(limit=LIST_SIZE, cursor=cursor if cursor and _ID.fullmatch(cursor) else None)
    return {
        "page_title": "Workflows",
        "workflows": [(wf, wf.status.value, _counts(wf), wf.finished_at) for wf in page.workflows],
        "next_url": "/workflows?" + urlencode({"cursor": page.next_cursor}) if page.next_cursor else None,
        "now": ctx.app.clock.now(),
    }


def _confirmations(wf: Workflow, counts: Sequence[tuple[str, int]]) -> dict[str, str]:
    """What the Cancel and Retry buttons ask before they act (only those that apply)."""
    n = dict(counts)
    out = {}
    unfinished = sum(n.get(s.value, 0) for s in (JobStatus.BLOCKED, JobStatus.SCHEDULED, JobStatus.PENDING, JobStatus.RUNNING))
    if wf.status is WorkflowStatus.RUNNING:
        out["cancel"] = f"Cancel workflow {wf.name}? {unfinished} unfinished step(s) will be cancelled."
    again = sum(n.get(s.value, 0) for s in RETRYABLE_STATUSES)
    if again:
        out["retry"] = f"Retry workflow {wf.name}? Its {again} failed or cancelled step(s) run again."
    return out


async def workflow_page(ctx: HttpContext, workflow_id: str) -> dict[str, Any]:
    """One workflow: header, counts, its graph and its steps (maps of many jobs collapsed)."""
    wf = await _read(ctx, workflow_id)
    now = ctx.app.clock.now()
    dag = layout(wf)
    counts = _counts(wf)
    rows = [StepRow.of_map(g, wf.id, now) if g.is_map else StepRow.of_job(g.jobs[0], now)
            for g in sorted(dag.groups, key=lambda g: g.first)]
    return {
        "page_title": f"Workflow {wf.name}",
        "wf": wf,
        "wf_status": wf.status.value,
        "counts": counts,
        "finished_at": wf.finished_at,
        "dag": dag,
        "rows": rows,
        "confirm": _confirmations(wf, counts),
        "now": now,
    }


async def map_page(ctx: HttpContext, workflow_id: str, step: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The jobs of mapped step `step`, in map order, filtered by status, `MAP_PAGE_SIZE` a page."""
    wf = await _read(ctx, workflow_id)
    jobs = wf.step(step)
    if not jobs:
        raise NotFoundError(f"workflow {wf.name!r} has no step {step!r}")
    status = params.get("status") or None
    if status not in {s.value for s in JobStatus}:
        status = None
    shown = [j for j in jobs if status is None or j.status.value == status]
    number = int(params["page"]) if params.get("page", "").isdigit() else 1
    number = max(1, min(number, (len(shown) - 1) // MAP_PAGE_SIZE + 1))
    here = f"/workflows/{wf.id}/steps/{step}"

    def url(**query: str | int | None) -> str:
        q = {k: v for k, v in query.items() if v}
        return f"{here}?{urlencode(q)}" if q else here

    now = ctx.app.clock.now()
    counts = status_counts(jobs)
    first = (number - 1) * MAP_PAGE_SIZE
    return {
        "page_title": f"{step} of workflow {wf.name}",
        "wf": wf,
        "step": step,
        "total": len(jobs),
        "tabs": [("all", url(), len(jobs), status is None)] + [(s, url(status=s), n, s == status) for s, n in counts],
        "rows": [StepRow.of_job(j, now) for j in shown[first:first + MAP_PAGE_SIZE]],
        "first": first,
        "shown": len(shown),
        "prev_url": url(status=status, page=number - 1 if number > 2 else None) if number > 1 else None,
        "next_url": url(status=status, page=number + 1) if first + MAP_PAGE_SIZE < len(shown) else None,
        "now": now,
    }
