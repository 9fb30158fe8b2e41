"""`/jobs`: enqueue (run now or later), get, list with filters and cursor pages, cancel, retry."""

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
    EnqueueRequest,
    JobOut,
    JobPageOut,
    UtcDatetime,
)
from taskyard.http.auth import Principal, audit

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
    ) -> JobPageOut:
        """Filter by queue, status, task and creation time; page with `cursor`."""
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
        )
        return JobPageOut(jobs=[JobOut.of(j) for j in page.jobs], next_cursor=page.next_cursor)

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
