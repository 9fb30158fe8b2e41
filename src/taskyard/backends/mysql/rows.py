"""Rows to records and back: the column lists the SQL selects, UTC `DATETIME(6)` values, and
JSON text columns (written as JSON text, read with `decode_stored`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from taskyard.backends.sql import JOB_COLUMNS
from taskyard.core.cluster import LeaderInfo, WorkerInfo
from taskyard.core.job import ACTIVE_STATUSES, AttemptError, Job, JobStatus, Progress
from taskyard.core.payload import decode_stored
from taskyard.core.schedule import Schedule

__all__ = (
    "JOB_COLUMNS",
    "SCHEDULE_COLUMNS",
    "WORKER_COLUMNS",
    "db_time",
    "dumps",
    "held_key",
    "job_from_row",
    "job_values",
    "leader_from_row",
    "loads",
    "schedule_from_row",
    "utc",
    "worker_from_row",
)

SCHEDULE_COLUMNS = "data, enabled, next_fire_at, last_fire_at"
WORKER_COLUMNS = (
    "id, host, pid, queues, concurrency, started_at, last_heartbeat, current_jobs, tasks, lost_threads"
)

_STATUS = {s.value: s for s in JobStatus}


#: The longest unique key stored as it is in the indexed `unique_active` column.
_KEY_INDEXED = 600


def held_key(key: str) -> str:
    """What `unique_active` holds for `key`: the key itself, or for a key too long for the
    index a digest of it (a unique key has no length limit; the full key is in `unique_key`)."""
    if len(key) <= _KEY_INDEXED:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def db_time(value: datetime | None) -> datetime | None:
    """A time as stored: naive, in UTC, to the microsecond (`DATETIME(6)` keeps every digit)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None)


def utc(value: datetime | None) -> datetime | None:
    """A stored (naive UTC) time as an aware datetime."""
    return None if value is None else value.replace(tzinfo=UTC)


def dumps(value: Any) -> str:
    """JSON text for a JSON column."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | bytes | None) -> Any:
    """A JSON column's value (None for SQL NULL)."""
    return None if text is None else decode_stored(text)


def job_from_row(row: Sequence[Any]) -> Job:
    """A `Job` from a row of `JOB_COLUMNS`."""
    (
        id_, task, queue, payload, status, priority, run_at, attempt, max_attempts, created_at,
        started_at, finished_at, result, errors, progress, unique_key, tags, timeout, worker_id,
        lease_token, lease_expires_at, cancel_requested, rescues, max_rescues, workflow_id, step,
        meta,
    ) = row  # fmt: skip
    progress_data = loads(progress)
    return Job(
        id=id_,
        task=task,
        queue=queue,
        payload=loads(payload),
        status=_STATUS[status],
        priority=priority,
        run_at=run_at.replace(tzinfo=UTC),
        attempt=attempt,
        max_attempts=max_attempts,
        created_at=created_at.replace(tzinfo=UTC),
        started_at=utc(started_at),
        finished_at=utc(finished_at),
        result=loads(result),
        errors=tuple(AttemptError.from_json(e) for e in loads(errors) or ()),
        progress=(
            Progress(progress_data["percent"], progress_data.get("message"))
            if progress_data
            else None
        ),
        unique_key=unique_key,
        tags=tuple(loads(tags) or ()),
        timeout=timeout,
        worker_id=worker_id,
        lease_token=lease_token,
        lease_expires_at=utc(lease_expires_at),
        cancel_requested=bool(cancel_requested),
        rescues=rescues,
        max_rescues=max_rescues,
        workflow_id=workflow_id,
        step=step,
        meta=loads(meta) or {},
    )


def job_values(job: Job) -> tuple[Any, ...]:
    """Every column of `job` in `JOB_COLUMNS` order, then `unique_active` (the key while the
    job is active and so holds it)."""
    return (
        job.id,
        job.task,
        job.queue,
        dumps(job.payload),
        job.status.value,
        job.priority,
        db_time(job.run_at),
        job.attempt,
        job.max_attempts,
        db_time(job.created_at),
        db_time(job.started_at),
        db_time(job.finished_at),
        None if job.result is None else dumps(job.result),
        dumps([e.to_json() for e in job.errors]),
        None if job.progress is None else dumps(job.progress.to_json()),
        job.unique_key,
        dumps(list(job.tags)),
        job.timeout,
        job.worker_id,
        job.lease_token,
        db_time(job.lease_expires_at),
        int(job.cancel_requested),
        job.rescues,
        job.max_rescues,
        job.workflow_id,
        job.step,
        dumps(dict(job.meta)) if job.meta else None,
        held_key(job.unique_key) if job.unique_key and job.status in ACTIVE_STATUSES else None,
    )


def schedule_from_row(row: Sequence[Any]) -> Schedule:
    """A `Schedule` from a row of `SCHEDULE_COLUMNS`: the indexed columns are authoritative."""
    data, enabled, next_fire_at, last_fire_at = row
    return Schedule.from_json(loads(data)).replace(
        enabled=bool(enabled), next_fire_at=utc(next_fire_at), last_fire_at=utc(last_fire_at)
    )


def worker_from_row(row: Sequence[Any]) -> WorkerInfo:
    """A `WorkerInfo` from a row of `WORKER_COLUMNS`."""
    id_, host, pid, queues, concurrency, started_at, last_heartbeat, current_jobs, tasks, lost = row
    return WorkerInfo(
        id=id_,
        host=host,
        pid=pid,
        queues=tuple(loads(queues)),
        concurrency=concurrency,
        started_at=started_at.replace(tzinfo=UTC),
        last_heartbeat=last_heartbeat.replace(tzinfo=UTC),
        current_jobs=tuple(loads(current_jobs)),
        tasks=tuple(loads(tasks)),
        lost_threads=lost,
    )


def leader_from_row(row: Sequence[Any]) -> LeaderInfo:
    """A `LeaderInfo` from (name, holder, elected_at, expires_at)."""
    name, holder, elected_at, expires_at = row
    return LeaderInfo(name, holder, elected_at.replace(tzinfo=UTC), expires_at.replace(tzinfo=UTC))
