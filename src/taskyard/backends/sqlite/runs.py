"""Worker-side writes after a claim, each fenced by the claim's lease token: heartbeat,
progress, and the one owned write that settles a run (`settle`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from taskyard.core.job import Job, JobStatus, LeaseReport, Progress
from taskyard.core.settle import Settle, Settled, SettleKind
from taskyard.errors import LeaseLost

from .graph import after_finish, step_finished
from .rows import JOB_COLUMNS, dumps, job_from_row, save, to_us

__all__ = ("extend_leases", "owned", "set_progress", "settle")

_CHUNK = 500  # stays well under SQLite's limit on bound parameters


def owned(conn: sqlite3.Connection, job_id: str, token: str) -> Job | None:
    """The running job `token` owns, or None."""
    row = conn.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ? AND status = 'running' AND lease_token = ?",
        (job_id, token),
    ).fetchone()
    return None if row is None else job_from_row(row)


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


def settle(
    conn: sqlite3.Connection, outcomes: Sequence[Settle], now: datetime
) -> tuple[list[Settled], int]:
    """The owned write of each outcome whose token still owns its job (one transaction: the
    caller's); a completion is one UPDATE, the other kinds read the job and write it back.
    A workflow step that finished moves its graph along in the same transaction; returns the
    answers and how many steps became pending."""
    now_us = to_us(now)
    answers: list[Settled] = []
    completed: list[str] = []
    woken = 0
    for o in outcomes:
        if o.kind is SettleKind.COMPLETED:
            cur = conn.execute(
                "UPDATE jobs SET status = 'completed', result = ?, finished_at = ?, "
                "progress = coalesce(?, progress), "
                "lease_token = NULL, lease_expires_at = NULL, cancel_requested = 0 "
                "WHERE id = ? AND status = 'running' AND lease_token = ?",
                (
                    None if o.result is None else dumps(o.result), now_us,
                    None if o.progress is None else dumps(o.progress.to_json()),
                    o.job_id, o.lease_token,
                ),
            )
            answers.append(Settled(o.job_id, owned=cur.rowcount > 0))
            if cur.rowcount > 0:
                completed.append(o.job_id)
            continue
        job = owned(conn, o.job_id, o.lease_token)
        if job is None:
            answers.append(Settled(o.job_id, owned=False))
        else:
            after = save(conn, o.applied_to(job, now))
            answers.append(Settled(o.job_id, owned=True, job=after))
            woken += after_finish(conn, after, now)
    # One look for workflow steps among the completed jobs (cheaper per job than RETURNING).
    for start in range(0, len(completed), _CHUNK):
        chunk = completed[start : start + _CHUNK]
        steps = conn.execute(
            f"SELECT id, step FROM jobs WHERE id IN ({', '.join('?' * len(chunk))}) "
            "AND workflow_id IS NOT NULL ORDER BY id",
            chunk,
        ).fetchall()
        for job_id, step in steps:
            woken += step_finished(conn, job_id, step, JobStatus.COMPLETED, now)
    return answers, woken
