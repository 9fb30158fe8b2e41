"""Job statements run by clients and maintenance: enqueue, read, list, cancel, retry,
rescue, promote, prune. Each function runs inside the transaction its caller opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from taskyard.core.job import (
    DELETABLE_STATUSES,
    Job,
    JobDraft,
    JobFilter,
    JobPage,
    JobStatus,
    RescueReport,
    cancelled_job,
    rescue_decision,
    retried_job,
)
from taskyard.errors import InvalidTransitionError, JobNotFound

from .graph import after_finish, retried_step
from .rows import JOB_COLUMNS, job_from_row, job_to_row, save, to_us
from .search import search_page

__all__ = (
    "LeasePair",
    "LeasesSeen",
    "cancel",
    "delete",
    "enqueue_many",
    "get",
    "get_existing",
    "list_page",
    "promote_due",
    "prune",
    "rescue_expired",
    "rescue_unrenewed",
    "retry",
    "retry_failed",
    "save",
    "unrenewed",
)

S = JobStatus
_CHUNK = 500  # stays well under SQLite's limit on bound parameters
_INSERT = f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' for _ in JOB_COLUMNS.split(', '))})"
_ACTIVE = ("scheduled", "pending", "running")


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def get(conn: sqlite3.Connection, job_id: str) -> Job | None:
    """The job, or None."""
    row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return job_from_row(row) if row else None


def get_existing(conn: sqlite3.Connection, job_id: str) -> Job:
    """The job, or `JobNotFound`."""
    job = get(conn, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def enqueue_many(conn: sqlite3.Connection, drafts: Sequence[JobDraft], now: datetime) -> list[Job]:
    """Insert new jobs; existing ids and active unique keys return the stored job."""
    if not drafts:
        return []
    found: dict[str, Job] = {}
    for chunk in _chunks(list({d.id for d in drafts})):
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({_marks(len(chunk))})"
        for row in conn.execute(sql, chunk):
            found[row[0]] = job_from_row(row)
    holders: dict[str, Job] = {}
    keys = list({d.unique_key for d in drafts if d.unique_key and d.id not in found})
    for chunk in _chunks(keys):
        sql = (
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE unique_key IN ({_marks(len(chunk))}) "
            "AND status IN ('scheduled', 'pending', 'running')"
        )
        for row in conn.execute(sql, chunk):
            job = job_from_row(row)
            holders[job.unique_key] = job  # type: ignore[index]
    out: list[Job] = []
    rows: list[tuple[Any, ...]] = []
    queues: set[str] = set()
    for d in drafts:
        existing = found.get(d.id)
        if existing is None and d.unique_key:
            existing = holders.get(d.unique_key)
        if existing is not None:
            out.append(existing)
            continue
        job = d.to_job(now)
        rows.append(job_to_row(job))
        found[job.id] = job
        if job.unique_key:
            holders[job.unique_key] = job
        queues.add(job.queue)
        out.append(job)
    if rows:
        conn.executemany(_INSERT, rows)
        # Queues are listed (and counted) from the moment they hold a job.
        conn.executemany("INSERT OR IGNORE INTO queues (name) VALUES (?)", [(q,) for q in queues])
    return out


def list_page(conn: sqlite3.Connection, f: JobFilter, limit: int, cursor: str | None) -> JobPage:
    """Jobs matching `f`, newest first, one page (a search: `search.search_page`)."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("queue", f.queue), ("task", f.task)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if f.status is not None:
        where.append("status = ?")
        args.append(JobStatus(f.status).value)
    if f.created_after is not None:
        where.append("created_at >= ?")
        args.append(to_us(f.created_after))
    if f.created_before is not None:
        where.append("created_at < ?")
        args.append(to_us(f.created_before))
    if cursor:
        where.append("id < ?")
        args.append(cursor)
    if f.q is not None:
        return search_page(conn, where, args, f.q, limit)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {JOB_COLUMNS} FROM jobs {clause} ORDER BY id DESC LIMIT ?"
    rows = conn.execute(sql, (*args, limit + 1)).fetchall()
    jobs = [job_from_row(r) for r in rows[:limit]]
    next_cursor = jobs[-1].id if len(rows) > limit and jobs else None
    return JobPage(jobs=jobs, next_cursor=next_cursor)


def delete(conn: sqlite3.Connection, ids: Sequence[str]) -> list[str]:
    """Delete the finished jobs among `ids`; returns the ids deleted."""
    deleted: list[str] = []
    finished = tuple(s.value for s in DELETABLE_STATUSES)
    for chunk in _chunks(list(dict.fromkeys(ids))):
        rows = conn.execute(
            f"DELETE FROM jobs WHERE id IN ({_marks(len(chunk))}) "
            f"AND status IN ({_marks(len(finished))}) AND workflow_id IS NULL RETURNING id",
            (*chunk, *finished),
        ).fetchall()
        deleted += [r[0] for r in rows]
    return deleted


def cancel(conn: sqlite3.Connection, job_id: str, now: datetime) -> tuple[Job, int]:
    """blocked|scheduled|pending → cancelled; running → cancel requested; cancelled
    unchanged. Returns the job and how many workflow steps its cancel made pending."""
    job = get_existing(conn, job_id)
    after = cancelled_job(job, now)
    if after is job:
        return job, 0
    save(conn, after)
    return after, after_finish(conn, after, now)


def _key_holder(conn: sqlite3.Connection, job: Job) -> str | None:
    if not job.unique_key:
        return None
    row = conn.execute(
        "SELECT id FROM jobs WHERE unique_key = ? AND id != ? "
        "AND status IN ('scheduled', 'pending', 'running')",
        (job.unique_key, job.id),
    ).fetchone()
    return row[0] if row else None


def retry(conn: sqlite3.Connection, job_id: str, now: datetime) -> Job:
    """Manual retry of a failed or cancelled job, as `retried_job` says, unless another
    active job holds its unique key; a workflow step as `graph.retried_step` says."""
    job = get_existing(conn, job_id)
    if job.workflow_id is not None:
        return retried_step(conn, job, now)
    after = retried_job(job, now)
    holder = _key_holder(conn, job)
    if holder is not None:
        raise InvalidTransitionError.unique_key_held(job.id, job.unique_key, holder)
    return save(conn, after)


def retry_failed(conn: sqlite3.Connection, queue: str | None, now: datetime) -> int:
    """Manual retry of every failed job (of one queue); skips jobs whose key is taken."""
    sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'failed'"
    args: tuple[Any, ...] = ()
    if queue is not None:
        sql += " AND queue = ?"
        args = (queue,)
    retried = 0
    for job in [job_from_row(r) for r in conn.execute(sql + " ORDER BY id", args)]:
        if job.workflow_id is not None:
            try:
                retried_step(conn, job, now)
            except InvalidTransitionError:
                continue  # a parent step failed under `fail`: that parent is the one to retry
        elif _key_holder(conn, job) is not None:
            continue
        else:
            save(conn, retried_job(job, now))
        retried += 1
    return retried


def rescue_expired(conn: sqlite3.Connection, now: datetime) -> RescueReport:
    """Expired running jobs → pending or failed, as `rescue_decision` says. The caller's
    write transaction makes the read and the write one step, so no two rescuers take a job."""
    rows = conn.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'running' AND lease_expires_at < ? "
        "ORDER BY id",
        (to_us(now),),
    ).fetchall()
    rescued: list[str] = []
    failed: list[str] = []
    for job in (job_from_row(r) for r in rows):
        decision = rescue_decision(job, now)
        after_finish(conn, save(conn, decision.apply(job, now)), now)
        (failed if decision.status is S.FAILED else rescued).append(job.id)
    return RescueReport(rescued=tuple(rescued), failed=tuple(failed))


#: A running job's lease as a rescuer sees it: (lease token, lease expiry µs).
LeasePair = tuple[str | None, int | None]
#: What a rescuer saw of each running job: its lease pair, and the reading of the rescuer's
#: own monotonic clock when it first saw that pair.
LeasesSeen = dict[str, tuple[LeasePair, float]]


def unrenewed(
    conn: sqlite3.Connection, seen: LeasesSeen, monotonic: float, now: datetime
) -> dict[str, LeasePair]:
    """Read-only half of rescue by observation (SQLite has no clock of its own, and a
    process's clock may be skewed, e.g. under faketime): the running jobs whose lease this
    caller has seen unchanged — same token, same expiry — for a whole lease (`lease_seconds`)
    of its own monotonic clock. A live worker renews every lease/3 at most, so it always
    changes the pair in time. `seen` (the caller's memory) is updated in place. Jobs claimed
    before `lease_seconds` existed fall back to the wall-clock rule at `now`."""
    rows = conn.execute(
        "SELECT id, lease_token, lease_expires_at, lease_seconds FROM jobs WHERE status = 'running'"
    ).fetchall()
    now_us = to_us(now)
    current: LeasesSeen = {}
    doomed: dict[str, LeasePair] = {}
    for job_id, token, expires, seconds in rows:
        pair = (token, expires)
        before = seen.get(job_id)
        since = before[1] if before is not None and before[0] == pair else monotonic
        current[job_id] = (pair, since)
        if seconds is None:
            stale = expires is not None and expires < now_us
        else:
            stale = monotonic - since >= seconds
        if stale:
            doomed[job_id] = pair
    seen.clear()
    seen.update(current)
    return doomed


def rescue_unrenewed(
    conn: sqlite3.Connection, doomed: dict[str, LeasePair], now: datetime
) -> RescueReport:
    """Write half: rescue the jobs `unrenewed` found, each only if its lease pair is still
    the one observed (the caller's write transaction makes check and write one step)."""
    rescued: list[str] = []
    failed: list[str] = []
    for job_id in sorted(doomed):
        job = get(conn, job_id)
        if job is None or job.status is not S.RUNNING:
            continue
        expires = None if job.lease_expires_at is None else to_us(job.lease_expires_at)
        if (job.lease_token, expires) != doomed[job_id]:
            continue  # renewed (or claimed anew) since it was observed
        decision = rescue_decision(job, now)
        after_finish(conn, save(conn, decision.apply(job, now)), now)
        (failed if decision.status is S.FAILED else rescued).append(job.id)
    return RescueReport(rescued=tuple(rescued), failed=tuple(failed))


def promote_due(conn: sqlite3.Connection, now: datetime) -> int:
    """scheduled → pending for due jobs."""
    cur = conn.execute(
        "UPDATE jobs SET status = 'pending' WHERE status = 'scheduled' AND run_at <= ?",
        (to_us(now),),
    )
    return cur.rowcount


def prune(
    conn: sqlite3.Connection,
    status: JobStatus,
    keep_last: int | None,
    older_than: datetime | None,
    *,
    queue: str | None = None,
    exclude_queues: tuple[str, ...] = (),
) -> int:
    """Delete finished jobs of `status` beyond the newest `keep_last` or before `older_than`,
    only in `queue` when given, never in `exclude_queues`, never a workflow step (steps go with
    their workflow: `workflows.prune`)."""
    scope = "status = ? AND workflow_id IS NULL"
    params: list[object] = [status.value]
    if queue is not None:
        scope += " AND queue = ?"
        params.append(queue)
    if exclude_queues:
        scope += f" AND queue NOT IN ({', '.join('?' * len(exclude_queues))})"
        params.extend(exclude_queues)
    deleted = 0
    if keep_last is not None:
        cur = conn.execute(
            f"DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE {scope} "
            "AND finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT -1 OFFSET ?)",
            (*params, max(keep_last, 0)),
        )
        deleted += cur.rowcount
    if older_than is not None:
        cur = conn.execute(
            f"DELETE FROM jobs WHERE {scope} AND finished_at < ?",
            (*params, to_us(older_than)),
        )
        deleted += cur.rowcount
    return deleted
