"""Job statements run by clients and maintenance: enqueue, read, list, cancel, retry,
rescue, promote, prune, and `save_many` (the write-back of jobs decided in Python). Each
function runs on a cursor inside the transaction its caller opened; rows to change are read
with a locking read first, so the decision and the write are one step.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from asyncmy.cursors import Cursor

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

from .rows import JOB_COLUMNS, db_time, held_key, job_from_row, job_values
from .schema import Tables

__all__ = (
    "cancel",
    "delete",
    "enqueue",
    "fetch_jobs",
    "get",
    "insert_jobs",
    "list_page",
    "marks",
    "promote_due",
    "prune",
    "rescue_expired",
    "retry",
    "retry_failed",
    "save_many",
    "server_now",
)

S = JobStatus
_CHUNK = 500
_INSERT_COLUMNS = f"{JOB_COLUMNS}, unique_active"
_ROW = "(" + ", ".join(["%s"] * (len(_INSERT_COLUMNS.split(", ")))) + ")"
#: The columns a transition may change, with their positions in `job_values`.
_MUTABLE = (
    ("status", 4), ("run_at", 6), ("attempt", 7), ("max_attempts", 8), ("started_at", 10),
    ("finished_at", 11), ("result", 12), ("errors", 13), ("progress", 14), ("worker_id", 18),
    ("lease_token", 19), ("lease_expires_at", 20), ("cancel_requested", 21), ("rescues", 22),
    ("unique_active", 27),
)  # fmt: skip


def marks(n: int) -> str:
    """`n` placeholders for an IN list."""
    return ", ".join(["%s"] * n)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


async def server_now(cur: Cursor, now: datetime | None = None) -> datetime:
    """`now`, or the server's clock (UTC, microseconds) when None."""
    if now is not None:
        return now
    await cur.execute("SELECT UTC_TIMESTAMP(6)")
    row: Any = await cur.fetchone()
    return row[0].replace(tzinfo=UTC)


async def fetch_jobs(cur: Cursor, sql: str, args: Any = None) -> list[Job]:
    """The jobs a query of `JOB_COLUMNS` returns."""
    await cur.execute(sql, args)
    return [job_from_row(r) for r in await cur.fetchall()]


async def get(cur: Cursor, t: Tables, job_id: str, *, lock: bool = False) -> Job | None:
    """The job (locked for this transaction when `lock`), or None."""
    jobs = await fetch_jobs(
        cur,
        f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (job_id,),
    )
    return jobs[0] if jobs else None


async def save_many(cur: Cursor, t: Tables, jobs: Sequence[Job]) -> None:
    """Write back every mutable column of `jobs` (rows the caller holds locked), one UPDATE
    per few hundred jobs: a join with the new values as a derived table."""
    for chunk in _chunks(list(jobs)):
        selects = []
        args: list[Any] = []
        for i, job in enumerate(chunk):
            values = job_values(job)
            if i == 0:
                cols = ", ".join(f"%s AS {name}" for name, _ in _MUTABLE)
                selects.append(f"SELECT %s AS id, {cols}")
            else:
                selects.append("SELECT " + marks(len(_MUTABLE) + 1))
            args.append(job.id)
            args.extend(values[pos] for _, pos in _MUTABLE)
        sets = ", ".join(f"j.{name} = x.{name}" for name, _ in _MUTABLE)
        await cur.execute(
            f"UPDATE {t.jobs} j JOIN ({' UNION ALL '.join(selects)}) x ON j.id = x.id SET {sets}",
            args,
        )


async def enqueue(
    cur: Cursor, t: Tables, drafts: Sequence[JobDraft], now: datetime | None, *, locking: bool
) -> tuple[list[Job], set[str]]:
    """Insert new jobs; existing ids and held unique keys return the stored job. Returns the
    jobs (one per draft) and the queues given a pending job. `locking` reads the key holders
    with a locking read (the latest commit, whatever the connection's isolation level): used
    when a first try collided with a concurrent enqueue."""
    at = await server_now(cur, now)
    lock = " LOCK IN SHARE MODE" if locking else ""
    found: dict[str, Job] = {}
    for chunk in _chunks(list(dict.fromkeys(d.id for d in drafts))):
        for job in await fetch_jobs(
            cur, f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE id IN ({marks(len(chunk))}){lock}", chunk
        ):
            found[job.id] = job
    holders: dict[str, Job] = {}
    keys = list(dict.fromkeys(
        held_key(d.unique_key) for d in drafts if d.unique_key and d.id not in found
    ))
    for chunk in _chunks(keys):
        for job in await fetch_jobs(
            cur,
            f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE unique_active IN ({marks(len(chunk))}){lock}",
            chunk,
        ):
            holders[job.unique_key] = job  # type: ignore[index]
    out: list[Job] = []
    rows: list[tuple[Any, ...]] = []
    woken: set[str] = set()
    for d in drafts:
        existing = found.get(d.id)
        if existing is None and d.unique_key:
            existing = holders.get(d.unique_key)
        if existing is not None:
            out.append(existing)
            continue
        job = d.to_job(at)
        rows.append(job_values(job))
        found[job.id] = job
        if job.unique_key:
            holders[job.unique_key] = job
        if job.status is S.PENDING:
            woken.add(job.queue)
        out.append(job)
    await _insert_rows(cur, t, rows)
    return out, woken


async def _insert_rows(cur: Cursor, t: Tables, rows: Sequence[tuple[Any, ...]]) -> None:
    for chunk in _chunks(rows):
        await cur.execute(
            f"INSERT INTO {t.jobs} ({_INSERT_COLUMNS}) VALUES {', '.join([_ROW] * len(chunk))}",
            [v for row in chunk for v in row],
        )


async def insert_jobs(cur: Cursor, t: Tables, new: Sequence[Job]) -> None:
    """Insert new jobs as they are (ids known not to exist)."""
    await _insert_rows(cur, t, [job_values(j) for j in new])


async def list_page(
    cur: Cursor, t: Tables, f: JobFilter, limit: int, cursor: str | None
) -> JobPage:
    """Jobs matching `f`, newest first, one page."""
    where = ["TRUE"]
    args: list[Any] = []
    for column, op, value in (
        ("queue", "=", f.queue),
        ("status", "=", JobStatus(f.status).value if f.status is not None else None),
        ("task", "=", f.task),
        ("created_at", ">=", db_time(f.created_after)),
        ("created_at", "<", db_time(f.created_before)),
        ("id", "<", cursor or None),
    ):
        if value is not None:
            where.append(f"{column} {op} %s")
            args.append(value)
    if f.q:
        # A scan (no index): what `core.search.search_text` looks in, in its stored form.
        where.append(
            "LOWER(CONCAT_WS(' ', id, task, queue, COALESCE(unique_key, ''), payload, errors)) "
            "LIKE %s ESCAPE '!'"
        )
        args.append("%" + _like_escaped(f.q.lower()) + "%")
    jobs = await fetch_jobs(
        cur,
        f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
        (*args, limit + 1),
    )
    page = jobs[:limit]
    return JobPage(jobs=page, next_cursor=page[-1].id if len(jobs) > limit and page else None)


def _like_escaped(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


async def delete(cur: Cursor, t: Tables, ids: Sequence[str]) -> list[str]:
    """Delete the finished jobs among `ids` (locked first: MySQL has no RETURNING); returns
    the ids deleted."""
    deleted: list[str] = []
    finished = tuple(s.value for s in DELETABLE_STATUSES)
    for chunk in _chunks(list(dict.fromkeys(ids))):
        await cur.execute(
            f"SELECT id FROM {t.jobs} WHERE id IN ({marks(len(chunk))}) "
            f"AND status IN ({marks(len(finished))}) AND workflow_id IS NULL FOR UPDATE",
            (*chunk, *finished),
        )
        found = [str(r[0]) for r in await cur.fetchall()]
        if found:
            await cur.execute(f"DELETE FROM {t.jobs} WHERE id IN ({marks(len(found))})", found)
        deleted += found
    return deleted


async def cancel(cur: Cursor, t: Tables, job_id: str, now: datetime | None) -> Job:
    """scheduled|pending → cancelled; running → cancel requested; cancelled unchanged."""
    job = await get(cur, t, job_id, lock=True)
    if job is None:
        raise JobNotFound(job_id)
    after = cancelled_job(job, await server_now(cur, now))
    if after is not job:
        await save_many(cur, t, [after])
    return after


async def _key_holder(cur: Cursor, t: Tables, job: Job) -> str | None:
    """The active job other than `job` holding its unique key, if any."""
    if not job.unique_key:
        return None
    await cur.execute(
        f"SELECT id FROM {t.jobs} WHERE unique_active = %s AND id <> %s LOCK IN SHARE MODE",
        (held_key(job.unique_key), job.id),
    )
    row: Any = await cur.fetchone()
    return None if row is None else str(row[0])


async def retry(cur: Cursor, t: Tables, job_id: str, now: datetime | None) -> Job:
    """Manual retry as `retried_job` says, unless another active job holds the unique key."""
    job = await get(cur, t, job_id, lock=True)
    if job is None:
        raise JobNotFound(job_id)
    after = retried_job(job, await server_now(cur, now))
    holder = await _key_holder(cur, t, job)
    if holder is not None:
        raise InvalidTransitionError.unique_key_held(job.id, job.unique_key, holder)
    await save_many(cur, t, [after])
    return after


async def retry_failed(cur: Cursor, t: Tables, queue: str | None, now: datetime | None) -> list[Job]:
    """Manual retry of every failed job (of one queue); skips jobs whose key is taken (of
    several failed jobs with one free key, the lowest id takes it)."""
    at = await server_now(cur, now)
    sql = f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE status = 'failed'"
    args: tuple[Any, ...] = ()
    if queue is not None:
        sql += " AND queue = %s"
        args = (queue,)
    failed = await fetch_jobs(cur, sql + " ORDER BY id FOR UPDATE", args)
    keys = list({held_key(j.unique_key) for j in failed if j.unique_key})
    held: set[str] = set()
    for chunk in _chunks(keys):
        await cur.execute(
            f"SELECT unique_active FROM {t.jobs} WHERE unique_active IN ({marks(len(chunk))}) "
            "LOCK IN SHARE MODE",
            chunk,
        )
        held.update(r[0] for r in await cur.fetchall())
    retried: list[Job] = []
    for job in failed:
        if job.unique_key:
            if held_key(job.unique_key) in held:
                continue
            held.add(held_key(job.unique_key))
        retried.append(retried_job(job, at))
    await save_many(cur, t, retried)
    return retried


async def rescue_expired(cur: Cursor, t: Tables, now: datetime | None) -> tuple[RescueReport, set[str]]:
    """Expired running jobs → pending or failed, as `rescue_decision` says. SKIP LOCKED: a
    job another rescuer (or its worker's write) holds is left to it. Returns the report and
    the queues given a pending job."""
    at = await server_now(cur, now)
    expired = await fetch_jobs(
        cur,
        f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE status = 'running' AND lease_expires_at < %s "
        "ORDER BY id FOR UPDATE SKIP LOCKED",
        (db_time(at),),
    )
    rescued: list[str] = []
    failed: list[str] = []
    after: list[Job] = []
    for job in expired:
        decision = rescue_decision(job, at)
        after.append(decision.apply(job, at))
        (failed if decision.status is S.FAILED else rescued).append(job.id)
    await save_many(cur, t, after)
    woken = {j.queue for j in after if j.status is S.PENDING}
    return RescueReport(rescued=tuple(rescued), failed=tuple(failed)), woken


async def promote_due(cur: Cursor, t: Tables, now: datetime | None) -> int:
    """scheduled → pending for due jobs (those another transaction holds are left to it)."""
    at = await server_now(cur, now)
    await cur.execute(
        f"SELECT id FROM {t.jobs} WHERE status = 'scheduled' AND run_at <= %s FOR UPDATE SKIP LOCKED",
        (db_time(at),),
    )
    ids = [r[0] for r in await cur.fetchall()]
    for chunk in _chunks(ids):
        await cur.execute(
            f"UPDATE {t.jobs} SET status = 'pending' WHERE id IN ({marks(len(chunk))})", chunk
        )
    return len(ids)


async def prune(
    cur: Cursor,
    t: Tables,
    status: JobStatus,
    keep_last: int | None,
    older_than: datetime | None,
    queue: str | None,
    exclude_queues: Collection[str],
) -> int:
    """Delete finished jobs of `status` beyond the newest `keep_last` (by finished_at, then
    id; never finished first) or finished before `older_than`, in scope (never a workflow step:
    steps go with their workflow, `graph.prune`)."""
    scope = "status = %s AND workflow_id IS NULL"
    args: list[Any] = [status.value]
    if queue is not None:
        scope += " AND queue = %s"
        args.append(queue)
    if exclude_queues:
        scope += f" AND queue NOT IN ({marks(len(exclude_queues))})"
        args.extend(exclude_queues)
    rules: list[str] = []
    rule_args: list[Any] = []
    if older_than is not None:
        rules.append("finished_at < %s")
        rule_args.append(db_time(older_than))
    if keep_last is not None:
        # The newest job beyond the kept ones: it and everything after it in that order go.
        await cur.execute(
            f"SELECT finished_at, id FROM {t.jobs} WHERE {scope} "
            "ORDER BY finished_at DESC, id DESC LIMIT 1 OFFSET %s",
            (*args, max(keep_last, 0)),
        )
        row: Any = await cur.fetchone()
        if row is not None:
            finished, boundary = row
            if finished is None:
                rules.append("(finished_at IS NULL AND id <= %s)")
                rule_args.append(boundary)
            else:
                rules.append(
                    "(finished_at IS NULL OR finished_at < %s OR (finished_at = %s AND id <= %s))"
                )
                rule_args += [finished, finished, boundary]
    if not rules:
        return 0
    return int(
        await cur.execute(
            f"DELETE FROM {t.jobs} WHERE {scope} AND ({' OR '.join(rules)})", (*args, *rule_args)
        )
    )

