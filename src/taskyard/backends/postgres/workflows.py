"""Workflows in PostgreSQL: enqueue a whole graph in one transaction (on the backend's pool or
inside the application's own), read and list them, cancel and resume them. The rules that move
steps along their edges are the functions of `graph.py`. Mixed into `PostgresBackend`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from taskyard.backends.postgres.catalog import NOW
from taskyard.backends.postgres.connection import converted_errors
from taskyard.backends.postgres.enqueue import EnqueueSql, Plan, enqueue_plan, run_async, run_sync
from taskyard.backends.postgres.graph import DEADLOCK_TRIES
from taskyard.backends.postgres.rows import JOB_COLUMNS, job_from_row, utc
from taskyard.core.job import Job, JobStatus
from taskyard.core.workflow import (
    Edge,
    EdgeState,
    Policy,
    Workflow,
    WorkflowDraft,
    WorkflowHeader,
    WorkflowPage,
)
from taskyard.errors import WorkflowNotFound

__all__ = ("WorkflowOps",)

#: Statements that yield rows to a plan, and the plan's result.
_Reads = Generator[tuple[str, Any], list[Any], list[Workflow]]


class WorkflowOps:
    """The workflow operations of the protocol, and `workflow_enqueue_in_transaction`."""

    schema: str
    _enqueue_sql: EnqueueSql

    def _conn(
        self, what: str
    ) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        raise NotImplementedError

    def _wake_local(self, queues: Sequence[str]) -> None:
        raise NotImplementedError

    # -- plans: the statements, whichever connection runs them ---------------------------------
    def _read_plan(self, ids: Sequence[str]) -> _Reads:
        """Headers, steps (in step order) and edges of the workflows `ids`, in that order."""
        s = self.schema
        headers = yield (
            f"SELECT id, name, created_at, cancelled_at, steps FROM {s}.workflows WHERE id = ANY (%s)",
            (list(ids),),
        )
        if not headers:
            return []
        steps = yield (
            f"SELECT {JOB_COLUMNS} FROM {s}.jobs WHERE workflow_id = ANY (%s) ORDER BY id",
            (list(ids),),
        )
        edges = yield (
            f"SELECT workflow_id, parent, child, policy, state FROM {s}.workflow_edges "
            "WHERE workflow_id = ANY (%s) ORDER BY child, parent",
            (list(ids),),
        )
        by_id: dict[str, tuple[list[Job], list[Edge]]] = {h[0]: ([], []) for h in headers}
        for row in steps:
            job = job_from_row(row)
            by_id[str(job.workflow_id)][0].append(job)
        for workflow_id, parent, child, policy, state in edges:
            by_id[workflow_id][1].append(Edge(parent, child, Policy(policy), EdgeState(state)))
        found: dict[str, Workflow] = {}
        for wid, name, created, cancelled, order in headers:
            position = {step_id: i for i, step_id in enumerate(order)}
            jobs = sorted(by_id[wid][0], key=lambda j: position.get(j.id, len(position)))
            header = WorkflowHeader(wid, name, created.astimezone(UTC), utc(cancelled))
            found[wid] = Workflow(header, tuple(jobs), tuple(by_id[wid][1]))
        return [found[i] for i in ids if i in found]

    def _enqueue_plan(self, workflow: WorkflowDraft, now: datetime | None) -> Plan:
        """Store the header, the steps (blocked when they have parents) and the open edges,
        unless the header is stored already; then read the workflow back."""
        s = self.schema
        created = yield (
            f"INSERT INTO {s}.workflows (id, name, created_at, steps) "
            f"VALUES (%(id)s, %(name)s, {NOW}, %(steps)s) ON CONFLICT (id) DO NOTHING RETURNING id",
            {"id": workflow.id, "name": workflow.name, "now": now, "steps": [d.id for d in workflow.steps]},
        )
        if created:
            yield from enqueue_plan(self._enqueue_sql, workflow.steps, now, workflow.blocked_ids)
            if workflow.edges:
                yield (
                    f"INSERT INTO {s}.workflow_edges (parent, child, workflow_id, policy, state) "
                    "SELECT p, c, %(workflow)s, pol, 'open' FROM unnest(%(parents)s::text[], "
                    "%(children)s::text[], %(policies)s::text[]) AS e(p, c, pol)",
                    {
                        "workflow": workflow.id,
                        "parents": [e.parent for e in workflow.edges],
                        "children": [e.child for e in workflow.edges],
                        "policies": [e.policy.value for e in workflow.edges],
                    },
                )
        (stored,) = yield from self._read_plan([workflow.id])
        return stored

    # -- the protocol ------------------------------------------------------------------------
    async def workflow_enqueue(self, *, workflow: WorkflowDraft, now: datetime | None = None) -> Workflow:
        async with self._conn("workflow_enqueue") as conn, conn.transaction():
            stored: Workflow = await run_async(conn, self._enqueue_plan(workflow, now))
        self._wake_local([j.queue for j in stored.steps if j.status is JobStatus.PENDING])
        return stored

    async def workflow_enqueue_in_transaction(
        self, *, connection: Any, workflow: WorkflowDraft, now: datetime | None = None
    ) -> Workflow:
        """Store a workflow (`workflow_enqueue`) in the current transaction of the
        application's own psycopg connection, sync or async (`TransactionalWorkflows`): its
        header, steps and edges exist if and only if that transaction commits, and workers are
        woken only then. A connection of another kind raises `TypeError`."""
        plan = self._enqueue_plan(workflow, now)
        if isinstance(connection, psycopg.Connection):
            # A savepoint inside the caller's transaction (or a transaction of its own).
            with converted_errors("workflow_enqueue"), connection.transaction():
                stored: Workflow = run_sync(connection, plan)
            return stored
        if isinstance(connection, psycopg.AsyncConnection):
            with converted_errors("workflow_enqueue"):
                async with connection.transaction():
                    stored = await run_async(connection, plan)
            return stored
        raise TypeError(
            "connection must be a psycopg Connection or AsyncConnection "
            f"(SQLAlchemy: session.connection().connection.driver_connection), not {type(connection).__name__}"
        )

    async def _read(self, what: str, ids: Sequence[str]) -> list[Workflow]:
        """The workflows `ids`, read from one snapshot."""
        async with self._conn(what) as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            found: list[Workflow] = await run_async(conn, self._read_plan(ids))
        return found

    async def workflow_get(self, *, workflow_id: str) -> Workflow | None:
        found = await self._read("workflow_get", [workflow_id])
        return found[0] if found else None

    async def workflows_list(self, *, limit: int = 50, cursor: str | None = None) -> WorkflowPage:
        async with self._conn("workflows_list") as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur = await conn.execute(
                f"SELECT id FROM {self.schema}.workflows WHERE %(cursor)s::text IS NULL OR id < %(cursor)s "
                "ORDER BY id DESC LIMIT %(limit)s",
                {"cursor": cursor, "limit": limit + 1},
            )
            ids = [r[0] for r in await cur.fetchall()]
            page: list[Workflow] = await run_async(conn, self._read_plan(ids[:limit]))
        return WorkflowPage(page, page[-1].id if len(ids) > limit and page else None)

    async def workflows_prune(self, *, finished_before: datetime, limit: int = 1000) -> int:
        s = self.schema
        async with self._conn("workflows_prune") as conn, conn.transaction():
            cur = await conn.execute(
                f"SELECT w.id FROM {s}.workflows w WHERE NOT EXISTS (SELECT 1 FROM {s}.jobs j "
                "WHERE j.workflow_id = w.id AND j.status IN ('blocked', 'scheduled', 'pending', 'running')) "
                f"AND coalesce((SELECT max(j.finished_at) FROM {s}.jobs j WHERE j.workflow_id = w.id), "
                "w.created_at) < %s ORDER BY w.id LIMIT %s FOR UPDATE SKIP LOCKED",
                (finished_before, limit),
            )
            ids = [r[0] for r in await cur.fetchall()]
            if ids:
                await conn.execute(f"DELETE FROM {s}.workflow_edges WHERE workflow_id = ANY (%s)", (ids,))
                await conn.execute(f"DELETE FROM {s}.jobs WHERE workflow_id = ANY (%s)", (ids,))
                await conn.execute(f"DELETE FROM {s}.workflows WHERE id = ANY (%s)", (ids,))
        return len(ids)

    async def workflow_cancel(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        async with self._conn("workflow_cancel") as conn:
            for attempt in range(DEADLOCK_TRIES):
                try:
                    async with conn.transaction():
                        return await self._cancel(conn, workflow_id, now)
                except psycopg.errors.DeadlockDetected:
                    if attempt == DEADLOCK_TRIES - 1:
                        raise
        raise AssertionError("unreachable")

    async def _cancel(self, conn: psycopg.AsyncConnection[Any], workflow_id: str, now: datetime | None) -> Workflow:
        s = self.schema
        p = {"id": workflow_id, "now": now}
        # Running steps first, before the header's lock: a settle holding one of them takes
        # that lock next (`graph.py`), so waiting for it while holding the lock could deadlock.
        running = (
            f"UPDATE {s}.jobs SET cancel_requested = true WHERE workflow_id = %(id)s "
            "AND status = 'running' AND NOT cancel_requested"
        )
        await conn.execute(running, p)
        cur = await conn.execute(
            f"UPDATE {s}.workflows SET cancelled_at = coalesce(cancelled_at, {NOW}) "
            "WHERE id = %(id)s RETURNING id",
            p,
        )
        if await cur.fetchone() is None:
            raise WorkflowNotFound(workflow_id)
        await conn.execute(
            f"UPDATE {s}.jobs SET status = 'cancelled', finished_at = {NOW}, unique_active = NULL "
            "WHERE workflow_id = %(id)s AND status IN ('blocked', 'scheduled', 'pending')",
            p,
        )
        await conn.execute(running, p)  # claimed since the first pass
        (after,) = await run_async(conn, self._read_plan([workflow_id]))
        return after

    async def workflow_retry(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        s = self.schema
        p = {"id": workflow_id, "now": now}
        async with self._conn("workflow_retry") as conn, conn.transaction():
            cur = await conn.execute(
                f"UPDATE {s}.workflows SET cancelled_at = NULL WHERE id = %(id)s RETURNING steps", p
            )
            row = await cur.fetchone()
            if row is None:
                raise WorkflowNotFound(workflow_id)
            await conn.execute(
                f"SELECT {s}.steps_retry(ARRAY(SELECT o.id FROM unnest(%(steps)s::text[]) "
                f"WITH ORDINALITY AS o(id, n) JOIN {s}.jobs j ON j.id = o.id "
                f"WHERE j.status IN ('failed', 'cancelled') ORDER BY o.n), {NOW})",
                {**p, "steps": row[0]},
            )
            (after,) = await run_async(conn, self._read_plan([workflow_id]))
        return after
