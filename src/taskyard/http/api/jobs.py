"""`/jobs`: enqueue (run now or later), get, list with filters, search and cursor pages, cancel,
retry, and bulk retry/cancel/delete by ids or by filter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.routing import APIRoute

from taskyard.core.job import JobStatus
from taskyard.errors import JobNotFound
from taskyard.http.api.access import current_principal
from taskyard.http.api.errors import ApiError
from taskyard.http.api.schemas import (
    ID_PATTERN,
    NAME_PATTERN,
    BulkOut,
    BulkRequest,
    BulkSkippedOut,
    EnqueueRequest,
    JobOut,
    JobPageOut,
    SearchText,
    UtcDatetime,
)
from taskyard.http.auth import Principal, audit
from taskyard.http.bulk import BulkAction, run_bulk

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("build",)

JobId = Annotated[str, Path(pattern=ID_PATTERN, description="A job id")]
Caller = Annotated[Principal, Depends(current_principal)]


def build(ctx: HttpContext, route_class: type[APIRoute]) -> APIRouter:
    """The jobs routes, acting through `ctx.app`."""
    router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=route_class)
    app = ctx.app

    @router.post("", status_code=201, response_model=JobOut, summary="Enqueue a job", operation_id="enqueueJob")
    async def enqueue(body: EnqueueRequest, caller: Caller) -> JobOut:
        """Validate the payload against the task's model (422 naming the field) and store one job.
        With a unique key held by an active job, that job is returned instead.
        """
        options = body.model_dump(exclude={"task", "payload"}, exclude_none=True)
        job = await app.aenqueue(body.task, body.payload, **options)
        audit(caller, "job.enqueue", job.id, [f"task={body.task}"])
        return JobOut.of(job)

    @router.get("", response_model=JobPageOut, summary="List jobs, newest first", operation_id="listJobs")
    async def list_jobs(
        queue: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
        status: JobStatus | None = None,
        task: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
        created_after: UtcDatetime | None = None,
        created_before: UtcDatetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
        q: Annotated[SearchText | None, Query(description="text in the id, task, queue, unique key, "
                                              "payload or errors (any case)")] = None,
    ) -> JobPageOut:
        """Filter by queue, status, task, creation time and text (`q`); page with `cursor`.
        A search may answer fewer than `limit` jobs with a `next_cursor` (Redis reads a bounded
        number of jobs per call): only `next_cursor` null ends the listing."""
        if created_after is not None and created_before is not None and created_after > created_before:
            raise ApiError(422, "validation_error", "created_after is later than created_before", [
                {"loc": ["query", "created_after"], "msg": "must not be later than created_before",
                 "type": "value_error"},
            ])
        page = await app.alist_jobs(
            queue=queue,
            status=status,
            task=task,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
            q=q,
        )
        return JobPageOut(jobs=[JobOut.of(j) for j in page.jobs], next_cursor=page.next_cursor)

    @router.post("/bulk", response_model=BulkOut, summary="Retry, cancel or delete many jobs", operation_id="bulkJobs")
    async def bulk(body: BulkRequest, caller: Caller) -> BulkOut:
        """Act on the jobs of `ids` (at most 1,000) or on those `filter` matches, newest first,
        at most 5,000 per call (`next_cursor` when more match). Each job is done or skipped
        on its own (retry: failed or cancelled jobs; cancel: active ones; delete: finished ones).
        """
        report = await run_bulk(
            app,
            BulkAction(body.action),
            ids=body.ids,
            job_filter=body.filter.to_filter() if body.filter else None,
            cursor=body.cursor,
        )
        target = f"{len(body.ids)} ids" if body.ids is not None else "filter"
        extra = [f"matched={report.matched}", f"done={report.done}", f"skipped={report.skipped_total}"]
        if body.filter is not None:
            extra += [f"{k}={v}" for k, v in body.filter.model_dump(exclude_none=True, mode="json").items()]
        audit(caller, f"jobs.bulk_{body.action}", target, extra)
        return BulkOut(
            matched=report.matched,
            done=report.done,
            skipped=[BulkSkippedOut(id=i, reason=r) for i, r in report.skipped],
            skipped_total=report.skipped_total,
            next_cursor=report.next_cursor,
        )

    @router.get("/{job_id}", response_model=JobOut, summary="Get a job", operation_id="getJob")
    async def get_job(job_id: JobId) -> JobOut:
        """The job with its payload, result, errors (with tracebacks) and progress."""
        job = await app.aget_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return JobOut.of(job)

    @router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a job", operation_id="cancelJob")
    async def cancel_job(job_id: JobId, caller: Caller) -> JobOut:
        """Scheduled or pending: cancelled now. Running: asked to stop (`cancel_requested`)."""
        job = await app.acancel_job(job_id)
        audit(caller, "job.cancel", job_id)
        return JobOut.of(job)

    @router.post("/{job_id}/retry", response_model=JobOut, summary="Retry a job", operation_id="retryJob")
    async def retry_job(job_id: JobId, caller: Caller) -> JobOut:
        """Failed or cancelled → pending, attempts start over (409 from any other status)."""
        job = await app.aretry_job(job_id)
        audit(caller, "job.retry", job_id)
        return JobOut.of(job)

    return router
