"""Rows to records: the column lists the SQL selects and their conversion to frozen model objects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from taskyard.backends.sql import JOB_COLUMNS
from taskyard.core.cluster import LeaderInfo, WorkerInfo
from taskyard.core.job import AttemptError, Job, JobStatus, Progress
from taskyard.core.schedule import Schedule

__all__ = (
    "JOB_COLUMNS",
    "J_COLUMNS",
    "SCHEDULE_COLUMNS",
    "UNLEASE",
    "WORKER_COLUMNS",
    "job_from_row",
    "leader_from_row",
    "progress_json",
    "schedule_from_row",
    "utc",
    "worker_from_row",
)

#: JOB_COLUMNS of the table aliased `j`, for statements that join another relation.
J_COLUMNS = ", ".join("j." + c for c in JOB_COLUMNS.split(", "))
#: Clears the claim; every transition out of `running` sets these.
UNLEASE = "lease_token = NULL, lease_expires_at = NULL, cancel_requested = false"
SCHEDULE_COLUMNS = "data, enabled, next_fire_at, last_fire_at"
WORKER_COLUMNS = (
    "id, host, pid, queues, concurrency, started_at, last_heartbeat, current_jobs, tasks, lost_threads"
)

_STATUS = {s.value: s for s in JobStatus}


def utc(value: datetime | None) -> datetime | None:
    """The same instant in UTC (an application's own connection may use another time zone)."""
    return value.astimezone(UTC) if value is not None else None


def job_from_row(row: Sequence[Any]) -> Job:
    """A `Job` from a row of `JOB_COLUMNS`."""
    (
        id_,
        task,
        queue,
        payload,
        status,
        priority,
        run_at,
        attempt,
        max_attempts,
        created_at,
        started_at,
        finished_at,
        result,
        errors,
        progress,
        unique_key,
        tags,
        timeout,
        worker_id,
        lease_token,
        lease_expires_at,
        cancel_requested,
        rescues,
        max_rescues,
        workflow_id,
        step,
        meta,
    ) = row
    return Job(
        id=id_,
        task=task,
        queue=queue,
        payload=payload,
        status=_STATUS[status],
        priority=priority,
        run_at=run_at.astimezone(UTC),
        attempt=attempt,
        max_attempts=max_attempts,
        created_at=created_at.astimezone(UTC),
        started_at=utc(started_at),
        finished_at=utc(finished_at),
        result=result,
        errors=tuple(AttemptError.from_json(e) for e in errors or ()),
        progress=Progress(progress["percent"], progress.get("message")) if progress else None,
        unique_key=unique_key,
        tags=tuple(tags or ()),
        timeout=timeout,
        worker_id=worker_id,
        lease_token=lease_token,
        lease_expires_at=utc(lease_expires_at),
        cancel_requested=cancel_requested,
        rescues=rescues,
        max_rescues=max_rescues,
        workflow_id=workflow_id,
        step=step,
        meta=dict(meta) if meta else {},
    )


def progress_json(progress: Progress) -> dict[str, Any]:
    """How progress is stored."""
    return {"percent": progress.percent, "message": progress.message}


def schedule_from_row(row: Sequence[Any]) -> Schedule:
    """A `Schedule` from a row of `SCHEDULE_COLUMNS`: the indexed columns are authoritative."""
    data, enabled, next_fire_at, last_fire_at = row
    return Schedule.from_json(data).replace(
        enabled=enabled, next_fire_at=utc(next_fire_at), last_fire_at=utc(last_fire_at)
    )


def worker_from_row(row: Sequence[Any]) -> WorkerInfo:
    """A `WorkerInfo` from a row of `WORKER_COLUMNS`."""
    id_, host, pid, queues, concurrency, started_at, last_heartbeat, current_jobs, tasks, lost_threads = row
    return WorkerInfo(
        id=id_,
        host=host,
        pid=pid,
        queues=tuple(queues),
        concurrency=concurrency,
        started_at=started_at.astimezone(UTC),
        last_heartbeat=last_heartbeat.astimezone(UTC),
        current_jobs=tuple(current_jobs),
        tasks=tuple(tasks),
        lost_threads=lost_threads,
    )


def leader_from_row(row: Sequence[Any]) -> LeaderInfo:
    """A `LeaderInfo` from (name, holder, elected_at, expires_at)."""
    name, holder, elected_at, expires_at = row
    return LeaderInfo(name, holder, elected_at.astimezone(UTC), expires_at.astimezone(UTC))
