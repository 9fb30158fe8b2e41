"""Enqueue: one INSERT (single-row for one draft, multi-row for a batch), run on the backend's
pool or on the application's own connection (sync or async) inside its open transaction.

The INSERT skips drafts whose id exists or whose unique key is held (`ON CONFLICT DO NOTHING`,
also between drafts of one batch); a second query fetches the jobs those drafts resolve to.
NOTIFY is transactional, so workers hear about a job only once its transaction commits. The
statements are a `Plan` (a generator of statements), so one sequence runs on a sync or an
async connection alike; workflows (`workflows.py`) build theirs on `enqueue_plan`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Generator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from taskyard.backends.postgres.rows import JOB_COLUMNS, job_from_row
from taskyard.core.job import Job, JobDraft, JobStatus
from taskyard.errors import BackendError

__all__ = ("EnqueueSql", "Plan", "enqueue_async", "enqueue_plan", "enqueue_sync", "run_async", "run_sync")

_STATUS = {s.value: s for s in JobStatus}

#: A draft whose unique key's holder finished between our two statements is inserted again;
#: more rounds than this means something else is wrong.
_MAX_ROUNDS = 5


class EnqueueSql:
    """The statements of one schema, and how their results become jobs."""

    def __init__(self, schema: str, channel: str) -> None:
        self.channel = channel
        # The drafts travel as one JSON document: far cheaper to build in Python than one
        # array per column, and the server parses it in one go.
        self.insert = f"""
WITH d AS (
    SELECT * FROM ROWS FROM (jsonb_to_recordset(%(drafts)s::jsonb)
        AS (id text, task text, queue text, payload jsonb, priority int, run_at timestamptz,
            max_attempts int, unique_key text, tags jsonb, timeout float8, max_rescues int,
            workflow_id text, step text, meta jsonb, blocked boolean))
        WITH ORDINALITY AS d(id, task, queue, payload, priority, run_at, max_attempts,
                             unique_key, tags, timeout, max_rescues, workflow_id, step, meta,
                             blocked, ord)
), n AS (SELECT coalesce(%(now)s::timestamptz, now()) AS now),
ins AS (
    INSERT INTO {schema}.jobs (id, task, queue, payload, status, priority, run_at, attempt,
        max_attempts, created_at, unique_key, unique_active, tags, timeout, max_rescues,
        workflow_id, step, meta)
    SELECT d.id, d.task, d.queue, coalesce(d.payload, 'null'),
           CASE WHEN d.blocked THEN 'blocked' WHEN d.run_at > n.now THEN 'scheduled'
                ELSE 'pending' END,
           d.priority, coalesce(d.run_at, n.now), 0, d.max_attempts, n.now,
           d.unique_key, d.unique_key, d.tags, d.timeout, d.max_rescues,
           d.workflow_id, d.step, d.meta
      FROM d, n ORDER BY d.ord
    ON CONFLICT DO NOTHING
    RETURNING id, status, run_at, created_at, queue
), wake AS (
    SELECT pg_notify(%(channel)s, x.queue) FROM (SELECT DISTINCT queue FROM ins WHERE status = 'pending') x
)
SELECT id, status, run_at, created_at, (SELECT count(*) FROM wake) FROM ins"""
        self.existing = f"""
SELECT {JOB_COLUMNS}, false FROM {schema}.jobs WHERE id = ANY (%(ids)s::text[])
UNION ALL
SELECT {JOB_COLUMNS}, true FROM {schema}.jobs WHERE unique_active = ANY (%(keys)s::text[])"""

        # One draft (the common `enqueue` call) binds its fields directly: no JSON document to
        # build and no recordset to unpack, which is measurably cheaper on both sides. Same
        # columns, rules and result rows as `insert`.
        now = "coalesce(%(now)s::timestamptz, now())"
        self.insert_one = f"""
WITH ins AS (
    INSERT INTO {schema}.jobs (id, task, queue, payload, status, priority, run_at, attempt,
        max_attempts, created_at, unique_key, unique_active, tags, timeout, max_rescues,
        workflow_id, step, meta)
    VALUES (%(id)s::text, %(task)s::text, %(queue)s::text, %(payload)s::jsonb,
            CASE WHEN %(run_at)s::timestamptz > {now} THEN 'scheduled' ELSE 'pending' END,
            %(priority)s::int, coalesce(%(run_at)s::timestamptz, {now}), 0,
            %(max_attempts)s::int, {now}, %(unique_key)s::text, %(unique_key)s::text,
            %(tags)s::jsonb, %(timeout)s::float8, %(max_rescues)s::int,
            %(workflow_id)s::text, %(step)s::text, %(meta)s::jsonb)
    ON CONFLICT DO NOTHING
    RETURNING id, status, run_at, created_at, queue
), wake AS (SELECT pg_notify(%(channel)s, queue) FROM ins WHERE status = 'pending')
SELECT id, status, run_at, created_at, (SELECT count(*) FROM wake) FROM ins"""

    def statement(
        self, drafts: Sequence[JobDraft], now: datetime | None, blocked: Collection[str] = ()
    ) -> tuple[str, dict[str, Any]]:
        """The INSERT for `drafts` and its parameters; the drafts whose ids are in `blocked`
        are stored `blocked` (workflow steps waiting for their parents)."""
        if len(drafts) == 1 and not blocked:
            d = drafts[0]
            return self.insert_one, {
                "id": d.id,
                "task": d.task,
                "queue": d.queue,
                "payload": json.dumps(d.payload, separators=(",", ":")),
                "run_at": d.run_at,
                "priority": d.priority,
                "max_attempts": d.max_attempts,
                "unique_key": d.unique_key,
                "tags": json.dumps(list(d.tags), separators=(",", ":")),
                "timeout": d.timeout,
                "max_rescues": d.max_rescues,
                "workflow_id": d.workflow_id,
                "step": d.step,
                "meta": json.dumps(dict(d.meta), separators=(",", ":")) if d.meta else None,
                "now": now,
                "channel": self.channel,
            }
        return self.insert, self.insert_params(drafts, now, blocked)

    def insert_params(
        self, drafts: Sequence[JobDraft], now: datetime | None, blocked: Collection[str] = ()
    ) -> dict[str, Any]:
        """Parameters of `insert`."""
        doc: list[dict[str, Any]] = [
            {
                "id": d.id,
                "task": d.task,
                "queue": d.queue,
                "payload": d.payload,
                "priority": d.priority,
                "run_at": d.run_at.isoformat() if d.run_at else None,
                "max_attempts": d.max_attempts,
                "unique_key": d.unique_key,
                "tags": list(d.tags),
                "timeout": d.timeout,
                "max_rescues": d.max_rescues,
            }
            for d in drafts
        ]
        # Workflow fields only where set: a plain job's document stays as small as before.
        for row, d in zip(doc, drafts, strict=True):
            if d.workflow_id is not None:
                row.update(workflow_id=d.workflow_id, step=d.step, blocked=d.id in blocked)
            if d.meta:
                row["meta"] = dict(d.meta)
        return {
            "drafts": json.dumps(doc, separators=(",", ":")),
            "now": now,
            "channel": self.channel,
        }

    @staticmethod
    def inserted(
        drafts: Sequence[JobDraft], found: dict[str, Job], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Record the jobs `insert` created: the drafts plus what the database decided."""
        by_id: dict[str, JobDraft] = {}
        for d in drafts:
            by_id.setdefault(d.id, d)  # the first draft of an id is the one inserted
        for job_id, status, run_at, created_at, _ in rows:
            d = by_id[job_id]
            found[job_id] = Job(
                id=job_id,
                task=d.task,
                queue=d.queue,
                payload=d.payload,
                status=_STATUS[status],
                priority=d.priority,
                run_at=run_at.astimezone(UTC),
                attempt=0,
                max_attempts=d.max_attempts,
                created_at=created_at.astimezone(UTC),
                unique_key=d.unique_key,
                tags=tuple(d.tags),
                timeout=d.timeout,
                max_rescues=d.max_rescues,
                workflow_id=d.workflow_id,
                step=d.step,
                meta=dict(d.meta),
            )

    @staticmethod
    def existing_params(drafts: Sequence[JobDraft]) -> dict[str, Any]:
        """Parameters of `existing` for drafts that were not inserted."""
        return {
            "ids": [d.id for d in drafts],
            "keys": [d.unique_key for d in drafts if d.unique_key],
        }

    @staticmethod
    def resolve(
        drafts: Sequence[JobDraft], found: dict[str, Job], rows: Sequence[Sequence[Any]]
    ) -> list[JobDraft]:
        """Match `rows` of `existing` to the drafts; returns the drafts still without a job."""
        by_id: dict[str, Job] = {}
        by_key: dict[str | None, Job] = {}
        for row in rows:
            job = job_from_row(row[:-1])
            if row[-1]:  # the active holder of its unique key
                by_key[job.unique_key] = job
            else:
                by_id[job.id] = job
        missing: list[JobDraft] = []
        for d in drafts:
            match = by_id.get(d.id) or (by_key.get(d.unique_key) if d.unique_key else None)
            if match is None:
                missing.append(d)
            else:
                found[d.id] = match
        return missing


def _ordered(drafts: Sequence[JobDraft], found: dict[str, Job]) -> list[Job]:
    if len(found) < len({d.id for d in drafts}):
        raise BackendError("enqueue could not settle the unique keys of its drafts; try again")
    return [found[d.id] for d in drafts]


def _pending(drafts: Sequence[JobDraft], found: dict[str, Job]) -> list[JobDraft]:
    return [d for d in drafts if d.id not in found]


#: A plan of statements run by `run_async` or `run_sync`: it yields (query, params) and is
#: sent back the rows (empty when the statement returns none); its return value is the result.
Plan = Generator[tuple[str, Any], list[Any], Any]


def enqueue_plan(
    sql: EnqueueSql, drafts: Sequence[JobDraft], now: datetime | None, blocked: Collection[str] = ()
) -> Generator[tuple[str, Any], list[Any], list[Job]]:
    """The statements of one enqueue, on whichever connection runs them: insert, then fetch
    what the drafts not inserted resolve to, for a few rounds."""
    found: dict[str, Job] = {}
    todo = list(drafts)
    for _ in range(_MAX_ROUNDS):
        rows = yield sql.statement(todo, now, blocked)
        sql.inserted(todo, found, rows)
        todo = _pending(todo, found)
        if not todo:
            break
        rows = yield sql.existing, sql.existing_params(todo)
        todo = sql.resolve(todo, found, rows)
        if not todo:
            break
    return _ordered(drafts, found)


async def run_async(conn: psycopg.AsyncConnection[Any], plan: Plan) -> Any:
    """Run `plan` on an async connection (in its current transaction, if one is open)."""
    async with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        try:
            step = next(plan)
            while True:
                await cur.execute(*step)
                step = plan.send(await cur.fetchall() if cur.description is not None else [])
        except StopIteration as done:
            return done.value


def run_sync(conn: psycopg.Connection[Any], plan: Plan) -> Any:
    """Run `plan` on a sync connection (in its current transaction, if one is open)."""
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        try:
            step = next(plan)
            while True:
                cur.execute(*step)
                step = plan.send(cur.fetchall() if cur.description is not None else [])
        except StopIteration as done:
            return done.value


async def enqueue_async(
    conn: psycopg.AsyncConnection[Any],
    sql: EnqueueSql,
    drafts: Sequence[JobDraft],
    now: datetime | None,
) -> list[Job]:
    """Enqueue on an async connection (in its current transaction, if one is open)."""
    jobs: list[Job] = await run_async(conn, enqueue_plan(sql, drafts, now))
    return jobs


def enqueue_sync(
    conn: psycopg.Connection[Any], sql: EnqueueSql, drafts: Sequence[JobDraft], now: datetime | None
) -> list[Job]:
    """Enqueue on a sync connection (in its current transaction, if one is open)."""
    jobs: list[Job] = run_sync(conn, enqueue_plan(sql, drafts, now))
    return jobs
