"""API bodies of jobs and queues, and their conversions from the core model."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    model_validator,
)

from taskyard.core.job import Job, JobFilter, JobStatus
from taskyard.core.payload import bounded
from taskyard.core.queue import QueueSettings
from taskyard.core.search import SEARCH_LIMIT
from taskyard.http.api.schemas.fields import (
    ID_PATTERN,
    TEN_YEARS,
    InModel,
    Name,
    Priority,
    UtcDatetime,
)

__all__ = (
    "AttemptErrorOut",
    "BulkOut",
    "BulkRequest",
    "BulkSkippedOut",
    "EnqueueRequest",
    "JobFilterIn",
    "JobOut",
    "JobPageOut",
    "ProgressOut",
    "QueueOut",
    "QueueSettingsPatch",
    "RateLimitIn",
    "RetriedOut",
    "SearchText",
)


class EnqueueRequest(InModel):
    """Run a task: now, after `delay` seconds, or at `run_at`."""

    task: Name
    payload: Any = None
    delay: float | None = Field(default=None, strict=True, ge=0, le=TEN_YEARS)
    run_at: UtcDatetime | None = None
    priority: Priority | None = None
    queue: Name | None = None
    unique_key: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None


class AttemptErrorOut(BaseModel):
    """One failed attempt."""

    attempt: int
    type: str
    message: str
    traceback: str | None
    at: datetime


class ProgressOut(BaseModel):
    """A handler's report of how far it got (0-100)."""

    percent: float
    message: str | None = None


class JobOut(BaseModel):
    """A job (the lease token is never shown)."""

    id: str
    task: str
    queue: str
    payload: Any
    status: JobStatus
    priority: int
    run_at: datetime
    attempt: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: Any
    errors: list[AttemptErrorOut]
    progress: ProgressOut | None
    unique_key: str | None
    tags: list[str]
    timeout: float | None
    worker_id: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    rescues: int = Field(description="times the job went back to pending after losing its worker")
    max_rescues: int = Field(description="losses of its worker after which the job fails")
    workflow_id: str | None = Field(default=None, description="the workflow this job is a step of")
    step: str | None = Field(default=None, description="its step name in that workflow (`name[i]` when mapped)")

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """From the core record; parts of the payload or result nested past the stored
        limit (rows written before it) are shown as `core.payload.TOO_DEEP`."""
        data = job.to_json()
        data["payload"], data["result"] = bounded(data["payload"]), bounded(data["result"])
        return cls.model_validate(data)


class JobPageOut(BaseModel):
    """A page of jobs, newest first; pass `next_cursor` as `cursor` for the next one."""

    jobs: list[JobOut]
    next_cursor: str | None


#: Text a listing searches for (`q`): the id, task, queue, unique key, payload and errors. At
#: least 3 characters: the search indexes work on trigrams, shorter text would scan every job.
SearchText = Annotated[str, StringConstraints(min_length=3, max_length=SEARCH_LIMIT)]
JobId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class JobFilterIn(InModel):
    """The jobs a bulk action applies to: the filters of `GET /jobs`."""

    queue: Name | None = None
    status: JobStatus | None = None
    task: Name | None = None
    created_after: UtcDatetime | None = None
    created_before: UtcDatetime | None = None
    q: SearchText | None = None

    @model_validator(mode="after")
    def _ordered(self) -> JobFilterIn:
        if self.created_after and self.created_before and self.created_after > self.created_before:
            raise ValueError("created_after is later than created_before")
        return self

    def to_filter(self) -> JobFilter:
        """The core filter."""
        return JobFilter(**self.model_dump())


class BulkRequest(InModel):
    """Retry, cancel or delete the jobs of `ids`, or those `filter` matches (from `cursor`)."""

    action: Literal["retry", "cancel", "delete"]
    ids: list[JobId] | None = Field(default=None, min_length=1, max_length=1000)
    filter: JobFilterIn | None = None
    cursor: JobId | None = Field(default=None, description="a previous answer's next_cursor (with filter)")

    @model_validator(mode="after")
    def _one_target(self) -> BulkRequest:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of ids and filter")
        if self.cursor is not None and self.filter is None:
            raise ValueError("cursor goes with filter")
        return self


class BulkSkippedOut(BaseModel):
    """A job a bulk action left as it was, and why."""

    id: str
    reason: str


class BulkOut(BaseModel):
    """What a bulk action did; with `next_cursor`, more jobs match: call again with it."""

    matched: int
    done: int
    skipped: list[BulkSkippedOut] = Field(description="the first 100 skipped jobs")
    skipped_total: int
    next_cursor: str | None


class RetriedOut(BaseModel):
    """How many failed jobs were sent back to pending."""

    retried: int




# -- queues --------------------------------------------------------------------------------
class RateLimitIn(InModel):
    """At most `limit` jobs start per `period` seconds."""

    limit: int = Field(strict=True, ge=1, le=1_000_000)
    period: float = Field(strict=True, ge=0.001, le=86400)


class QueueSettingsPatch(InModel):
    """Settings to change; a field left out is left as it is, `null` removes the limit."""

    concurrency: int | None = Field(default=None, strict=True, ge=1, le=100_000)
    rate_limit: RateLimitIn | None = None


class QueueOut(BaseModel):
    """A queue: its settings and how many jobs it has in each status."""

    name: str
    paused: bool
    concurrency: int | None
    rate_limit: RateLimitIn | None
    counts: dict[str, int]

    @classmethod
    def of(cls, settings: QueueSettings, counts: dict[str, int]) -> QueueOut:
        """From stored settings and counts."""
        rate = settings.rate_limit
        return cls(
            name=settings.name,
            paused=settings.paused,
            concurrency=settings.concurrency,
            rate_limit=RateLimitIn(limit=rate.limit, period=rate.period) if rate else None,
            counts={status.value: counts.get(status.value, 0) for status in JobStatus},
        )
