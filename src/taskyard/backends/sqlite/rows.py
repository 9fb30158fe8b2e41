"""Conversions between SQLite rows and the core records, and the write-back of a job.

Times are stored as integer microseconds since the Unix epoch (exact, and fast to order);
payloads, results, errors, progress and tags as JSON text.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from taskyard.backends.sql import JOB_COLUMNS
from taskyard.core.job import AttemptError, Job, JobStatus, Progress
from taskyard.core.payload import decode_stored

__all__ = ("JOB_COLUMNS", "dumps", "from_us", "job_from_row", "job_to_row", "loads", "save", "to_us")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_STATUS = {s.value: s for s in JobStatus}

_SAVE = (
    "UPDATE jobs SET status = ?, run_at = ?, attempt = ?, max_attempts = ?, started_at = ?, "
    "finished_at = ?, result = ?, errors = ?, progress = ?, worker_id = ?, lease_token = ?, "
    "lease_expires_at = ?, cancel_requested = ?, rescues = ? WHERE id = ?"
)


def to_us(when: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _US


def from_us(value: int | None) -> datetime | None:
    """The aware UTC datetime of a stored time (None stays None)."""
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def dumps(value: Any) -> str:
    """Compact JSON text."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Any:
    """Parse JSON text; NULL is None."""
    return None if text is None else json.loads(text)


def job_from_row(row: tuple[Any, ...]) -> Job:
    """A `Job` from a row selected with `JOB_COLUMNS`."""
    errors = row[13]
    progress = row[14]
    tags = row[16]
    run_at = from_us(row[6])
    created_at = from_us(row[9])
    assert run_at is not None and created_at is not None
    return Job(
        id=row[0],
        task=row[1],
        queue=row[2],
        payload=decode_stored(row[3]),
        status=_STATUS[row[4]],
        priority=row[5],
        run_at=run_at,
        attempt=row[7],
        max_attempts=row[8],
        created_at=created_at,
        started_at=from_us(row[10]),
        finished_at=from_us(row[11]),
        result=None if row[12] is None else decode_stored(row[12]),
        errors=tuple(AttemptError.from_json(e) for e in json.loads(errors)) if errors else (),
        progress=_progress(json.loads(progress)) if progress else None,
        unique_key=row[15],
        tags=tuple(json.loads(tags)) if tags else (),
        timeout=row[17],
        worker_id=row[18],
        lease_token=row[19],
        lease_expires_at=from_us(row[20]),
        cancel_requested=bool(row[21]),
        rescues=row[22],
        max_rescues=row[23],
        workflow_id=row[24],
        step=row[25],
        meta=json.loads(row[26]) if row[26] else {},
    )


def job_to_row(job: Job) -> tuple[Any, ...]:
    """The values of `JOB_COLUMNS` for `job`."""
    return (
        job.id,
        job.task,
        job.queue,
        dumps(job.payload),
        job.status.value,
        job.priority,
        to_us(job.run_at),
        job.attempt,
        job.max_attempts,
        to_us(job.created_at),
        None if job.started_at is None else to_us(job.started_at),
        None if job.finished_at is None else to_us(job.finished_at),
        None if job.result is None else dumps(job.result),
        dumps([e.to_json() for e in job.errors]) if job.errors else None,
        dumps({"percent": job.progress.percent, "message": job.progress.message})
        if job.progress
        else None,
        job.unique_key,
        dumps(list(job.tags)) if job.tags else None,
        job.timeout,
        job.worker_id,
        job.lease_token,
        None if job.lease_expires_at is None else to_us(job.lease_expires_at),
        int(job.cancel_requested),
        job.rescues,
        job.max_rescues,
        job.workflow_id,
        job.step,
        dumps(dict(job.meta)) if job.meta else None,
    )


def _progress(data: dict[str, Any]) -> Progress:
    return Progress(percent=float(data["percent"]), message=data.get("message"))


def save(conn: sqlite3.Connection, job: Job) -> Job:
    """Write back every mutable field of `job`."""
    row = job_to_row(job)
    conn.execute(_SAVE, (*row[4:5], row[6], *row[7:9], *row[10:15], *row[18:23], job.id))
    return job
