"""Jobs administered rather than worked: cancel, manual retry, and the maintenance sweeps
(rescue expired leases, promote due jobs, prune finished ones). Mixed into `PostgresBackend`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import psycopg

from taskyard.backends.postgres.catalog import NOW
from taskyard.backends.postgres.rows import J_COLUMNS as _J_COLUMNS
from taskyard.backends.postgres.rows import JOB_COLUMNS, job_from_row
from taskyard.backends.postgres.rows import UNLEASE as _UNLEASE
from taskyard.core.job import (
    CANCELLABLE_STATUSES,
    DELETABLE_STATUSES,
    FINISHED_STATUSES,
    RETRYABLE_STATUSES,
    Job,
    JobStatus,
    RescueDecision,
    RescueReport,
    check_prunable,
    rescue_decision,
)
from taskyard.errors import BackendError, InvalidTransitionError, JobNotFound

__all__ = ("JobAdminOps",)



class JobAdminOps:
    """Cancel, retry, rescue, promote and prune; needs the backend's connection helpers."""

    schema: str

    def _conn(
        self, what: str
    ) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        raise NotImplementedError

    async def _fetch_jobs(self, what: str, query: str, params: Any = None) -> list[Job]:
        raise NotImplementedError

    async def _fetch_waking(self, what: str, update: str, params: Any) -> list[Job]:
        raise NotImplementedError

    def _waking(self, update: str) -> str:
        raise NotImplementedError

    def _settling(self, update: str, now: str) -> str:
        raise NotImplementedError

    async def job_get(self, *, job_id: str) -> Job | None:
        raise NotImplementedError

    async def job_cancel(self, *, job_id: str, now: datetime | None = None) -> Job:
        s = self.schema
        p = {"id": job_id, "now": now}
        # Each step is atomic; if the job moved between steps (claimed, released), start over.
        # A workflow step is cancelled by `step_cancel`, which applies the rules to its children.
        for _ in range(10):
            jobs = await self._fetch_jobs(
                "job_cancel",
                f"UPDATE {s}.jobs SET status = 'cancelled', finished_at = {NOW}, unique_active = NULL "
                "WHERE id = %(id)s AND status IN ('scheduled', 'pending') AND workflow_id IS NULL "
                f"RETURNING {JOB_COLUMNS}",
                p,
            ) or await self._fetch_jobs(
                "job_cancel",
                f"UPDATE {s}.jobs SET cancel_requested = true WHERE id = %(id)s AND status = 'running' "
                f"RETURNING {JOB_COLUMNS}",
                p,
            )
            if jobs:
                return jobs[0]
            job = await self.job_get(job_id=job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job.status is JobStatus.CANCELLED:
                return job
            if job.status in FINISHED_STATUSES:
                raise InvalidTransitionError.not_cancellable(job_id, job.status.value)
            if job.workflow_id is not None and job.status in CANCELLABLE_STATUSES:
                async with self._conn("job_cancel") as conn:
                    cur = await conn.execute(f"SELECT {s}.step_cancel(%(id)s, %(now)s::timestamptz)", p)
                    row = await cur.fetchone()
                if row is not None and row[0]:
                    cancelled = await self.job_get(job_id=job_id)
                    if cancelled is not None:
                        return cancelled
        raise BackendError(f"job {job_id} kept changing while being cancelled; try again")

    async def _retry(
        self, what: str, where: str, params: dict[str, Any], *, steps: str | None = None
    ) -> tuple[list[Job], int]:
        """failed|cancelled → pending for the jobs `where` selects, except those whose unique
        key another active job holds; of several with one key, the lowest id takes it. With
        `steps` (an SQL expression retrying workflow steps, returning how many), both run in
        one transaction; returns the plain jobs retried and how many steps were.
        """
        s = self.schema
        update = (
            f"UPDATE {s}.jobs j SET status = 'pending', attempt = 0, rescues = 0, run_at = {NOW}, "
            "finished_at = NULL, result = NULL, progress = NULL, worker_id = NULL, "
            f"unique_active = j.unique_key, {_UNLEASE} FROM ("
            f"SELECT DISTINCT ON (coalesce('k:' || r.unique_key, 'i:' || r.id)) r.id FROM {s}.jobs r "
            f"WHERE {where} AND (r.unique_key IS NULL OR NOT EXISTS "
            f"(SELECT 1 FROM {s}.jobs o WHERE o.unique_active = r.unique_key)) "
            "ORDER BY coalesce('k:' || r.unique_key, 'i:' || r.id), r.id) c "
            f"WHERE j.id = c.id RETURNING {_J_COLUMNS}"
        )
        for attempt in range(3):
            try:
                if steps is None:
                    return await self._fetch_waking(what, update, params), 0
                async with self._conn(what) as conn, conn.transaction():
                    cur = await conn.execute(f"SELECT {steps}", params)
                    row = await cur.fetchone()
                    cur = await conn.execute(self._waking(update), params)
                    jobs = [job_from_row(r[:-1]) for r in await cur.fetchall()]
                return jobs, int(row[0]) if row else 0
            except psycopg.errors.UniqueViolation:
                # A job with the same key was enqueued or retried concurrently: look again.
                if attempt == 2:
                    raise
        return [], 0

    async def job_retry(self, *, job_id: str, now: datetime | None = None) -> Job:
        jobs, _ = await self._retry(
            "job_retry",
            "r.id = %(id)s AND r.status IN ('failed', 'cancelled') AND r.workflow_id IS NULL",
            {"id": job_id, "now": now},
        )
        if jobs:
            return jobs[0]
        job = await self.job_get(job_id=job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.workflow_id is not None:
            return await self._retry_step(job, now)
        if job.status in RETRYABLE_STATUSES:
            raise InvalidTransitionError.unique_key_held(
                job_id, job.unique_key, await self._key_holder(job.unique_key)
            )
        raise InvalidTransitionError.not_retryable(job_id, job.status.value)

    async def _retry_step(self, job: Job, now: datetime | None) -> Job:
        """The manual retry of workflow step `job` (`step_retry`, under its workflow's lock)."""
        async with self._conn("job_retry") as conn:
            cur = await conn.execute(
                f"SELECT o_retried, o_status, o_parent FROM {self.schema}.step_retry(%s, %s::timestamptz)",
                (job.id, now),
            )
            row = await cur.fetchone()
        assert row is not None
        retried, status, parent = row
        if parent is not None:
            raise InvalidTransitionError.parent_step_failed(job.id, job.step, parent)
        if not retried:
            raise InvalidTransitionError.not_retryable(job.id, status or job.status.value)
        after = await self.job_get(job_id=job.id)
        if after is None:
            raise JobNotFound(job.id)
        return after

    async def _key_holder(self, unique_key: str | None) -> str | None:
        """The active job holding `unique_key` now, if any (to name it in a refusal)."""
        if unique_key is None:
            return None
        async with self._conn("job_retry") as conn:
            cur = await conn.execute(
                f"SELECT id FROM {self.schema}.jobs WHERE unique_active = %(key)s",
                {"key": unique_key},
            )
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def jobs_retry_failed(
        self, *, queue: str | None = None, now: datetime | None = None
    ) -> int:
        # Plain jobs by one UPDATE; workflow steps (a few, usually none) by `steps_retry`, in
        # step order, in the same statement.
        steps = (
            f"{self.schema}.steps_retry(ARRAY(SELECT id FROM {self.schema}.jobs "
            "WHERE status = 'failed' AND workflow_id IS NOT NULL "
            f"AND (%(queue)s::text IS NULL OR queue = %(queue)s) ORDER BY id), {NOW})"
        )
        jobs, retried = await self._retry(
            "jobs_retry_failed",
            "r.status = 'failed' AND r.workflow_id IS NULL AND (%(queue)s::text IS NULL OR r.queue = %(queue)s)",
            {"queue": queue, "now": now},
            steps=steps,
        )
        return len(jobs) + retried

    # -- jobs: maintenance -------------------------------------------------------------------
    async def jobs_rescue_expired(self, *, now: datetime | None = None) -> RescueReport:
        s = self.schema
        async with self._conn("jobs_rescue_expired") as conn, conn.transaction():
            cur = await conn.execute(
                f"SELECT {JOB_COLUMNS}, {NOW} FROM {s}.jobs WHERE status = 'running' "
                f"AND lease_expires_at < {NOW} FOR UPDATE SKIP LOCKED",
                {"now": now},
            )
            rows = await cur.fetchall()
            if not rows:
                return RescueReport()
            at = rows[0][-1]
            expired = [job_from_row(r[:-1]) for r in rows]
            decisions = [rescue_decision(j, at) for j in expired]
            # The rows stay locked (FOR UPDATE) until this commits: no other rescuer sees them
            # as running and expired, and no heartbeat extends them in between.
            await self._rescue_write(conn, expired, decisions, at)
        failed = [d.status is JobStatus.FAILED for d in decisions]
        return RescueReport(
            rescued=tuple(j.id for j, f in zip(expired, failed, strict=True) if not f),
            failed=tuple(j.id for j, f in zip(expired, failed, strict=True) if f),
        )

    async def _rescue_write(
        self,
        conn: psycopg.AsyncConnection[Any],
        jobs: list[Job],
        decisions: list[RescueDecision],
        at: datetime,
    ) -> None:
        """Carry out rescue decisions on rows the caller holds locked (FOR UPDATE)."""
        s = self.schema
        await conn.execute(
            self._settling(
                f"UPDATE {s}.jobs j SET status = x.status, attempt = x.attempt, "
                "rescues = x.rescues, errors = j.errors || x.error::jsonb, "
                "finished_at = CASE WHEN x.status = 'failed' THEN %(at)s ELSE j.finished_at END, "
                "worker_id = CASE WHEN x.status = 'failed' THEN j.worker_id END, "
                "unique_active = CASE WHEN x.status = 'failed' THEN NULL ELSE j.unique_active END, "
                f"{_UNLEASE} FROM unnest(%(ids)s::text[], %(statuses)s::text[], %(attempts)s::int[], "
                "%(rescues)s::int[], %(errors)s::text[]) x(id, status, attempt, rescues, error) "
                f"WHERE j.id = x.id RETURNING {_J_COLUMNS}",
                "%(at)s::timestamptz",
            ),
            {
                "ids": [j.id for j in jobs],
                "statuses": [d.status.value for d in decisions],
                "attempts": [d.attempt for d in decisions],
                "rescues": [d.rescues for d in decisions],
                "errors": [json.dumps([d.error.to_json()]) for d in decisions],
                "at": at,
            },
        )

    async def jobs_promote_due(self, *, now: datetime | None = None) -> int:
        s = self.schema
        jobs = await self._fetch_waking(
            "jobs_promote_due",
            f"UPDATE {s}.jobs j SET status = 'pending' FROM (SELECT id FROM {s}.jobs "
            f"WHERE status = 'scheduled' AND run_at <= {NOW} FOR UPDATE SKIP LOCKED) d "
            f"WHERE j.id = d.id RETURNING {_J_COLUMNS}",
            {"now": now},
        )
        return len(jobs)

    async def jobs_delete(self, *, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        async with self._conn("jobs_delete") as conn:
            cur = await conn.execute(
                f"DELETE FROM {self.schema}.jobs WHERE id = ANY (%s) AND status = ANY (%s) "
                "AND workflow_id IS NULL RETURNING id",
                (list(dict.fromkeys(ids)), [s.value for s in DELETABLE_STATUSES]),
            )
            return [row[0] for row in await cur.fetchall()]

    async def jobs_prune(
        self,
        *,
        status: JobStatus,
        keep_last: int | None = None,
        older_than: datetime | None = None,
        queue: str | None = None,
        exclude_queues: Collection[str] = (),
    ) -> int:
        check_prunable(status)
        if keep_last is None and older_than is None:
            return 0
        s = self.schema
        scope = "status = %(status)s AND workflow_id IS NULL"  # steps go with their workflow
        if queue is not None:
            scope += " AND queue = %(queue)s"
        if exclude_queues:
            scope += " AND NOT (queue = ANY(%(exclude)s))"
        rules = []
        if older_than is not None:
            rules.append("finished_at < %(older)s")
        if keep_last is not None:
            rules.append(
                f"id NOT IN (SELECT id FROM {s}.jobs WHERE {scope} "
                "ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT %(keep)s)"
            )
        async with self._conn("jobs_prune") as conn:
            cur = await conn.execute(
                f"DELETE FROM {s}.jobs WHERE {scope} AND ({' OR '.join(rules)})",
                {
                    "status": status.value, "older": older_than, "keep": keep_last,
                    "queue": queue, "exclude": list(exclude_queues),
                },
            )
            return cur.rowcount
