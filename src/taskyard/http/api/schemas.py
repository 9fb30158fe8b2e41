"""Request and response bodies of the API (pydantic), and their conversions from the core model."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from taskyard.core.cluster import WorkerInfo
from taskyard.core.coverage import TaskCoverage
from taskyard.core.job import Job, JobStatus
from taskyard.core.names import NAME_PATTERN
from taskyard.core.payload import bounded
from taskyard.core.queue import QueueSettings
from taskyard.core.schedule import NULLABLE_FIELDS, SETTABLE_FIELDS, MisfirePolicy, Schedule
from taskyard.services.base import ServiceStatus

__all__ = (
    "ID_PATTERN",
    "NAME_PATTERN",
    "AlertOut",
    "AlertsOut",
    "ApplySetRequest",
    "EnqueueRequest",
    "JobOut",
    "JobPageOut",
    "LeaderOut",
    "LeaseOut",
    "Name",
    "QueueOut",
    "QueueSettingsPatch",
    "RateLimitIn",
    "RemovedOut",
    "RetriedOut",
    "ScheduleCreate",
    "ScheduleOut",
    "SchedulePatch",
    "ServiceOut",
    "TaskOut",
    "UtcDatetime",
    "WorkerOut",
)

# NAME_PATTERN (names of tasks, queues, schedules, owners and services) is the one rule
# of core/names.py, re-exported here for the routes.
#: Job ids (26 characters of Crockford base32).
ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
#: Bounds every backend can store (PostgreSQL integers are 32-bit). Numbers are strict
#: throughout: `true` or `"5"` is not an integer (JSON integers are accepted as seconds).
Priority = Annotated[int, Field(strict=True, ge=-1_000_000, le=1_000_000)]
TEN_YEARS = 10 * 365 * 86400
Every = Annotated[float, Field(strict=True, gt=0, le=TEN_YEARS)]
Jitter = Annotated[float, Field(strict=True, ge=0, le=86400)]
MisfireCap = Annotated[int, Field(strict=True, ge=1, le=10_000)]
MisfireGrace = Annotated[float, Field(strict=True, ge=0, le=TEN_YEARS)]
Cron = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Tz = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _iso_text(value: Any) -> Any:
    # pydantic would read a number (or a numeric string, as every query value is) as a Unix
    # timestamp; the documented format is an ISO 8601 date-time with an offset.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMERIC.fullmatch(value.strip())):
        raise ValueError("expected an ISO 8601 date-time with an offset, e.g. 2030-01-01T00:00:00Z")
    return value


_NUMERIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _to_utc(value: datetime) -> datetime:
    # An offset can push a valid local time past year 1 or 9999 once converted.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date is out of range once converted to UTC") from None


#: A timezone-aware datetime, converted to UTC (422 when that leaves datetime's range).
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_to_utc)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- jobs ----------------------------------------------------------------------------------
class EnqueueRequest(_In):
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


class RetriedOut(BaseModel):
    """How many failed jobs were sent back to pending."""

    retried: int


# -- queues --------------------------------------------------------------------------------
class RateLimitIn(_In):
    """At most `limit` jobs start per `period` seconds."""

    limit: int = Field(strict=True, ge=1, le=1_000_000)
    period: float = Field(strict=True, ge=0.001, le=86400)


class QueueSettingsPatch(_In):
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


# -- schedules -----------------------------------------------------------------------------
# The fields of these two models are the settable fields of `Schedule`
# (`core.schedule.SETTABLE_FIELDS`) with the API's bounds; tests hold them to that list and
# to its defaults.
class ScheduleCreate(_In):
    """A runtime schedule: exactly one of `cron` and `every` (seconds). `misfire_grace`:
    seconds a fire may be late and still run (default half the period, at most 60 s)."""

    name: Name
    task: Name
    cron: Cron | None = None
    every: Every | None = None
    tz: Tz = "UTC"
    payload: Any = None
    queue: Name | None = None
    priority: Priority | None = None
    jitter: Jitter = 0.0
    misfire: MisfirePolicy = MisfirePolicy.SKIP
    misfire_cap: MisfireCap = 100
    misfire_grace: MisfireGrace | None = None
    enabled: StrictBool = True
    owner: Name | None = None


class SchedulePatch(_In):
    """Fields to change on a schedule; those left out stay as they are. `null` clears `cron`,
    `every`, `payload`, `queue`, `priority`, `misfire_grace` and `owner`; the other fields
    cannot be null.
    """

    task: Name | SkipJsonSchema[None] = None
    cron: Cron | None = None
    every: Every | None = None
    tz: Tz | SkipJsonSchema[None] = None
    payload: Any = None
    queue: Name | None = None
    priority: Priority | None = None
    jitter: Jitter | SkipJsonSchema[None] = None
    misfire: MisfirePolicy | SkipJsonSchema[None] = None
    misfire_cap: MisfireCap | SkipJsonSchema[None] = None
    misfire_grace: MisfireGrace | None = None
    enabled: StrictBool | SkipJsonSchema[None] = None
    owner: Name | None = None

    @field_validator(*(f for f in SETTABLE_FIELDS if f not in NULLABLE_FIELDS), mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # None here only means "left out"; an explicit null would be stored as is.
        if value is None:
            raise ValueError("must not be null (leave the field out to keep its value)")
        return value


class ScheduleOut(BaseModel):
    """A stored schedule; `next_fires` (the next five fire times) on single reads."""

    name: str
    task: str
    cron: str | None
    every: float | None
    tz: str
    payload: Any
    queue: str | None
    priority: int | None
    jitter: float
    misfire: MisfirePolicy
    misfire_cap: int
    misfire_grace: float | None = None
    enabled: bool
    owner: str | None
    source: str
    last_fire_at: datetime | None
    next_fire_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    declarer: str | None = Field(
        default=None, description='Source "code": the app and process that stored this definition.'
    )
    declarer_started_at: datetime | None = Field(
        default=None, description="When that process started declaring (the newest starter's definition wins).",
    )
    confirmed_at: datetime | None = Field(
        default=None,
        description='Source "code": when a running scheduler last confirmed it still declares it; '
        "unconfirmed for scheduler.declared_grace, it is removed.",
    )
    task_defaults: dict[str, Any] | None = Field(
        default=None,
        description="The task's queue, priority, max_attempts, max_rescues and timeout as the storing process "
        "knew them: a scheduler of another app version that does not know the task fires with these.",
    )
    next_fires: list[datetime] | None = None

    @classmethod
    def of(cls, schedule: Schedule, next_fires: list[datetime] | None = None) -> ScheduleOut:
        """From the core record."""
        data = {k: v for k, v in schedule.to_json().items() if k in cls.model_fields}
        data["payload"] = bounded(data["payload"])
        return cls.model_validate({**data, "next_fires": next_fires})


class ApplySetRequest(_In):
    """Replace an owner's schedules with those of a schedule set."""

    owner: Name
    payload: dict[str, Any] | None = None


class RemovedOut(BaseModel):
    """How many objects were removed."""

    removed: int


# -- services and workers ------------------------------------------------------------------
class LeaseOut(BaseModel):
    """The leadership lease a leader-only service competes for, and whether this process
    leads it now."""

    name: str
    leader: bool


class LeaderOut(BaseModel):
    """Who holds one leadership lease right now (`holder` null while nobody leads it)."""

    lease: str
    holder: str | None
    host: str | None
    pid: int | None
    elected_at: datetime | None
    expires_at: datetime | None
    #: This process competes for the lease (it runs the duty) and holds it now.
    runs_here: bool
    leads_here: bool


class ServiceOut(BaseModel):
    """A managed service with its status and run metrics."""

    id: str
    name: str
    status: ServiceStatus
    error: str | None
    critical: bool
    auto_start: bool
    #: Restarts the manager made: after failures (critical services) or on request.
    restarts: int
    #: Restarts after failures in the current series (it gives up at `manager.max_restarts`).
    restarts_in_row: int = 0
    #: True once the restart budget (`manager.max_restarts`) is spent: it stays in ERROR.
    gave_up: bool = False
    periodic: bool
    pausable: bool
    stoppable: bool
    lease: LeaseOut | None = None
    metrics: dict[str, Any]


class AlertOut(BaseModel):
    """One alert instance: a rule and its subject (queue, service or schedule labels)."""

    name: str
    kind: str
    state: Literal["ok", "pending", "firing", "resolved"]
    labels: dict[str, str]
    value: float | None
    threshold: float | None
    since: datetime | None
    started_at: datetime | None
    resolved_at: datetime | None
    evaluated_at: datetime | None


class AlertsOut(BaseModel):
    """The alerts as this process's alerter sees them. Alerts are evaluated on the elected
    leader only: `evaluated_here` is false in any other process, whose list is not current."""

    evaluated_here: bool
    alerts: list[AlertOut]


class WorkerOut(BaseModel):
    """A registered worker process and the jobs it is running."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    last_heartbeat: datetime
    current_jobs: list[str]
    tasks: list[str] = Field(description="Task names this worker runs (it claims only these).")
    lost_threads: int = Field(
        0, description="Handler threads that would not stop after their job was stopped (still running)."
    )

    @classmethod
    def of(cls, info: WorkerInfo) -> WorkerOut:
        """From the backend's registry entry."""
        return cls(
            id=info.id,
            host=info.host,
            pid=info.pid,
            queues=list(info.queues),
            concurrency=info.concurrency,
            started_at=info.started_at,
            last_heartbeat=info.last_heartbeat,
            current_jobs=list(info.current_jobs),
            tasks=list(info.tasks),
            lost_threads=info.lost_threads,
        )


class TaskOut(BaseModel):
    """A task name seen in active jobs or on live workers: its jobs, and who can run them."""

    task: str
    pending: int
    scheduled: int
    running: int
    waiting_since: datetime | None = Field(
        description="run_at of its oldest due job (pending, or scheduled and due); null if none"
    )
    queues: list[str] = Field(description="Queues holding its active jobs.")
    workers: list[str] = Field(description="Ids of the live workers that know the task.")
    unclaimable: bool = Field(
        description="Jobs wait (pending or scheduled) and no live worker knows the task: "
        "they stay pending until a worker that registers it starts."
    )

    @classmethod
    def of(cls, coverage: TaskCoverage) -> TaskOut:
        """From the core's coverage of one task."""
        return cls(
            task=coverage.task,
            pending=coverage.pending,
            scheduled=coverage.scheduled,
            running=coverage.running,
            waiting_since=coverage.waiting_since,
            queues=list(coverage.queues),
            workers=list(coverage.workers),
            unclaimable=coverage.is_unclaimable,
        )
