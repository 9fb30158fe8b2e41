"""Worker-side writes after a claim, each fenced by the claim's lease token: heartbeat,
progress, complete, fail, snooze, finish cancelled, release.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from taskyard.core.job import (
    AttemptError,
    Completion,
    Job,
    JobStatus,
    LeaseReport,
    Progress,
    rescue_decision,
)
from taskyard.errors import LeaseLost

from .jobs import save
from .rows import JOB_COLUMNS, dumps, job_from_row, to_us

__all__ = (
    "complete",
    "extend_leases",
    "fail",
    "finish_cancelled",
    "owned",
    "release",
    "rescue",
    "set_progress",
    "snooze",
)

S = JobStatus


def owned(conn: sqlite3.Connection, job_id: str, token: str) -> Job:
    """The running job `token` owns, or `LeaseLost`."""
    row = conn.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ? AND status = 'running' AND lease_token = ?",
        (job_id, token),
    ).fetchone()
    if row is None:
        raise LeaseLost.of_job(job_id)
    return job_from_row(row)


def extend_leases(
    conn: sqlite3.Connection, leases: Mapping[str, str], lease: float, now: datetime
) -> LeaseReport:
    """Push the leases still owned; report lost ones and requested cancellations."""
    expires = to_us(now + timedelta(seconds=lease))
    lost: set[str] = set()
    cancel: set[str] = set()
    for job_id, token in leases.items():
        row = conn.execute(
            "UPDATE jobs SET lease_expires_at = ?, lease_seconds = ? WHERE id = ? "
            "AND status = 'running' AND lease_token = ? RETURNING cancel_requested",
            (expires, float(lease), job_id, token),
        ).fetchone()
        if row is None:
            lost.add(job_id)
        elif row[0]:
            cancel.add(job_id)
    return LeaseReport(lost=frozenset(lost), cancel_requested=frozenset(cancel))


def set_progress(conn: sqlite3.Connection, job_id: str, token: str, progress: Progress) -> None:
    """Record progress of an owned job."""
    cur = conn.execute(
        "UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running' AND lease_token = ?",
        (dumps({"percent": progress.percent, "message": progress.message}), job_id, token),
    )
    if cur.rowcount == 0:
        raise LeaseLost.of_job(job_id)


def complete(
    conn: sqlite3.Connection, completions: Sequence[Completion], now: datetime
) -> list[str]:
    """running → completed for owned jobs; returns the refused ids."""
    now_us = to_us(now)
    lost: list[str] = []
    for c in completions:
        cur = conn.execute(
            "UPDATE jobs SET status = 'completed', result = ?, finished_at = ?, "
            "progress = coalesce(?, progress), "
            "lease_token = NULL, lease_expires_at = NULL, cancel_requested = 0 "
            "WHERE id = ? AND status = 'running' AND lease_token = ?",
            (
                None if c.result is None else dumps(c.result), now_us,
                None if c.progress is None else dumps(c.progress.to_json()),
                c.job_id, c.lease_token,
            ),
        )
        if cur.rowcount == 0:
            lost.append(c.job_id)
    return lost


def _off_lease(job: Job, **changes: object) -> Job:
    return job.replace(lease_token=None, lease_expires_at=None, cancel_requested=False, **changes)


def fail(
    conn: sqlite3.Connection,
    job_id: str,
    token: str,
    error: AttemptError,
    retry_at: datetime | None,
    now: datetime,
) -> Job:
    """Record a failed attempt: scheduled again at `retry_at`, or failed for good."""
    job = owned(conn, job_id, token)
    errors = (*job.errors, error)
    if retry_at is None:
        return save(conn, _off_lease(job, status=S.FAILED, errors=errors, finished_at=now))
    return save(conn, _off_lease(job, status=S.SCHEDULED, errors=errors, run_at=retry_at))


def snooze(conn: sqlite3.Connection, job_id: str, token: str, run_at: datetime) -> Job:
    """`RetryLater`: scheduled at `run_at` with one more attempt allowed."""
    job = owned(conn, job_id, token)
    return save(
        conn, _off_lease(job, status=S.SCHEDULED, run_at=run_at, max_attempts=job.max_attempts + 1)
    )


def finish_cancelled(
    conn: sqlite3.Connection, job_id: str, token: str, reason: str, now: datetime
) -> Job:
    """running → cancelled once the handler stopped."""
    job = owned(conn, job_id, token)
    return save(
        conn, _off_lease(job, status=S.CANCELLED, finished_at=now, result={"cancelled": reason})
    )


def release(conn: sqlite3.Connection, job_id: str, token: str) -> bool:
    """Hand an owned job back (→ pending, the run not counted); False when not owned."""
    cur = conn.execute(
        "UPDATE jobs SET status = 'pending', attempt = MAX(attempt - 1, 0), worker_id = NULL, "
        "lease_token = NULL, lease_expires_at = NULL, cancel_requested = 0 "
        "WHERE id = ? AND status = 'running' AND lease_token = ?",
        (job_id, token),
    )
    return cur.rowcount > 0


def rescue(conn: sqlite3.Connection, job_id: str, token: str, reason: str, now: datetime) -> Job:
    """The holder saw its job lost (its child process died): `rescue_decision` with `reason`,
    the same write as a rescue of an expired lease."""
    job = owned(conn, job_id, token)
    return save(conn, rescue_decision(job, now, reason).apply(job, now))
