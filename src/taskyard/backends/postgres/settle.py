"""`jobs_settle`, the one owned write, in PostgreSQL: the outcomes of a batch grouped by kind,
one `UPDATE ... FROM unnest(...)` per kind (a transaction when there are several), each row
fenced by its lease token; the workflow steps it finishes move their children along in the
same statement (`graph.finishing`). Mixed into `PostgresBackend`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from taskyard.backends.postgres.catalog import NOW
from taskyard.backends.postgres.graph import DEADLOCK_TRIES, finishing
from taskyard.backends.postgres.rows import (
    J_COLUMNS,
    JOB_COLUMNS,
    UNLEASE,
    job_from_row,
    progress_json,
)
from taskyard.core.job import Job, RescueDecision, rescue_decision
from taskyard.core.settle import Settle, Settled, SettleKind

__all__ = ("SettleOps",)

K = SettleKind

#: Per kind: the SET clause and the arrays unnest() reads besides (id, token), as
#: (name, SQL type, the value of one outcome).
_WRITES: dict[SettleKind, tuple[str, tuple[tuple[str, str, Any], ...]]] = {
    K.FAILED: (
        "status = CASE WHEN x.retry_at IS NULL THEN 'failed' ELSE 'scheduled' END, "
        f"finished_at = CASE WHEN x.retry_at IS NULL THEN {NOW} ELSE j.finished_at END, "
        "unique_active = CASE WHEN x.retry_at IS NULL THEN NULL ELSE j.unique_active END, "
        "run_at = coalesce(x.retry_at, j.run_at), errors = j.errors || x.error::jsonb",
        (
            ("error", "text", lambda o: json.dumps([o.error.to_json()])),
            ("retry_at", "timestamptz", lambda o: o.retry_at),
        ),
    ),
    K.SNOOZED: (
        "status = 'scheduled', run_at = x.run_at, max_attempts = j.max_attempts + 1",
        (("run_at", "timestamptz", lambda o: o.run_at),),
    ),
    K.CANCELLED: (
        f"status = 'cancelled', finished_at = {NOW}, result = x.result::jsonb, unique_active = NULL",
        (("result", "text", lambda o: json.dumps({"cancelled": o.reason})),),
    ),
    K.RELEASED: ("status = 'pending', attempt = greatest(j.attempt - 1, 0), worker_id = NULL", ()),
}


class SettleOps:
    """The owned write of a batch of outcomes; needs the backend's connection helpers."""

    schema: str

    def _conn(
        self, what: str
    ) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        raise NotImplementedError

    def _settling(self, update: str, now: str) -> str:
        raise NotImplementedError

    async def _rescue_write(
        self,
        conn: psycopg.AsyncConnection[Any],
        jobs: list[Job],
        decisions: list[RescueDecision],
        at: datetime,
    ) -> None:
        raise NotImplementedError

    async def jobs_settle(
        self, *, outcomes: Sequence[Settle], now: datetime | None = None
    ) -> list[Settled]:
        if not outcomes:
            return []
        batches = _batches(outcomes)
        async with self._conn("jobs_settle") as conn:
            for attempt in range(DEADLOCK_TRIES):
                try:
                    answers = await self._settle(conn, batches, now)
                    break
                except psycopg.errors.DeadlockDetected:
                    # Crossed with another writer of the same workflows (`graph.py`); all of
                    # this write was rolled back, so it is tried again whole.
                    if attempt == DEADLOCK_TRIES - 1:
                        raise
        return [answers[i] for i in range(len(outcomes))]

    async def _settle(
        self,
        conn: psycopg.AsyncConnection[Any],
        batches: list[tuple[SettleKind, list[tuple[int, Settle]]]],
        now: datetime | None,
    ) -> dict[int, Settled]:
        answers: dict[int, Settled] = {}
        several = len(batches) > 1 or any(k is K.RESCUED for k, _ in batches)
        async with conn.transaction() if several else contextlib.nullcontext():
            for kind, batch in batches:
                if kind is K.COMPLETED:
                    written = await self._complete(conn, batch, now)
                elif kind is K.RESCUED:
                    written = await self._rescue(conn, batch, now)
                else:
                    written = await self._write(conn, kind, batch, now)
                for i, o in batch:
                    job = written.get(o.job_id)
                    answers[i] = Settled(
                        o.job_id, owned=job is not None, job=job if isinstance(job, Job) else None
                    )
        return answers

    async def _complete(
        self, conn: psycopg.AsyncConnection[Any], batch: list[tuple[int, Settle]], now: datetime | None
    ) -> dict[str, Job | bool]:
        cur = await conn.execute(
            f"WITH u AS (UPDATE {self.schema}.jobs j SET status = 'completed', result = c.result::jsonb, "
            "progress = coalesce(c.progress::jsonb, j.progress), "
            f"finished_at = {NOW}, unique_active = NULL, {UNLEASE} "
            "FROM unnest(%(ids)s::text[], %(tokens)s::text[], %(results)s::text[], "
            "%(progress)s::text[]) c(id, token, result, progress) "
            "WHERE j.id = c.id AND j.status = 'running' AND j.lease_token = c.token "
            f"RETURNING j.id, j.status, j.step, j.workflow_id), {finishing(self.schema, NOW)} "
            "SELECT id, (SELECT count(*) FROM g) FROM u",
            {
                "ids": [o.job_id for _, o in batch],
                "tokens": [o.lease_token for _, o in batch],
                "results": [json.dumps(o.result, separators=(",", ":")) for _, o in batch],
                "progress": [
                    None if o.progress is None else json.dumps(progress_json(o.progress))
                    for _, o in batch
                ],
                "now": now,
            },
        )
        return {r[0]: True for r in await cur.fetchall()}

    async def _write(
        self,
        conn: psycopg.AsyncConnection[Any],
        kind: SettleKind,
        batch: list[tuple[int, Settle]],
        now: datetime | None,
    ) -> dict[str, Job | bool]:
        sets, extra = _WRITES[kind]
        names = ["id", "token", *(name for name, _, _ in extra)]
        arrays = ["%(id)s::text[]", "%(token)s::text[]", *(f"%({n})s::{t}[]" for n, t, _ in extra)]
        params: dict[str, Any] = {
            "id": [o.job_id for _, o in batch],
            "token": [o.lease_token for _, o in batch],
            "now": now,
        }
        for name, _, value in extra:
            params[name] = [value(o) for _, o in batch]
        cur = await conn.execute(
            self._settling(
                f"UPDATE {self.schema}.jobs j SET {sets}, {UNLEASE} "
                f"FROM unnest({', '.join(arrays)}) x({', '.join(names)}) "
                "WHERE j.id = x.id AND j.status = 'running' AND j.lease_token = x.token "
                f"RETURNING {J_COLUMNS}",
                NOW,
            ),
            params,
        )
        jobs = [job_from_row(r[:-1]) for r in await cur.fetchall()]
        return {j.id: j for j in jobs}

    async def _rescue(
        self, conn: psycopg.AsyncConnection[Any], batch: list[tuple[int, Settle]], now: datetime | None
    ) -> dict[str, Job | bool]:
        """Lock the owned rows, decide in core (`rescue_decision`), write the decisions."""
        cur = await conn.execute(
            f"SELECT {JOB_COLUMNS}, {NOW} FROM {self.schema}.jobs WHERE status = 'running' "
            "AND (id, lease_token) IN (SELECT * FROM unnest(%(ids)s::text[], %(tokens)s::text[])) "
            "ORDER BY id FOR UPDATE",
            {"ids": [o.job_id for _, o in batch], "tokens": [o.lease_token for _, o in batch], "now": now},
        )
        rows = await cur.fetchall()
        if not rows:
            return {}
        at = rows[0][-1]
        reasons = {o.job_id: o.reason for _, o in batch}
        jobs = [job_from_row(r[:-1]) for r in rows]
        decisions = [rescue_decision(j, at, reasons[j.id]) for j in jobs]
        await self._rescue_write(conn, jobs, decisions, at)
        return {j.id: d.apply(j, at) for j, d in zip(jobs, decisions, strict=True)}


def _batches(outcomes: Sequence[Settle]) -> list[tuple[SettleKind, list[tuple[int, Settle]]]]:
    """The outcomes (with their index) by kind; one job id at most once per batch, so that a
    row written is matched to its outcome by id (a second run's outcome goes to another)."""
    batches: list[tuple[SettleKind, list[tuple[int, Settle]]]] = []
    seen: dict[SettleKind, list[set[str]]] = {}
    index: dict[tuple[SettleKind, int], list[tuple[int, Settle]]] = {}
    for i, o in enumerate(outcomes):
        rounds = seen.setdefault(o.kind, [])
        n = next((k for k, ids in enumerate(rounds) if o.job_id not in ids), len(rounds))
        if n == len(rounds):
            rounds.append(set())
            index[o.kind, n] = []
            batches.append((o.kind, index[o.kind, n]))
        rounds[n].add(o.job_id)
        index[o.kind, n].append((i, o))
    return batches
