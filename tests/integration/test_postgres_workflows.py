"""Workflows on PostgreSQL beyond the conformance suite: a workflow enqueued inside the
application's own transaction, parents of one fan-in settled at once from several backend
instances (as several machines would), and the migration that brought workflows in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from taskyard.backends.postgres import PostgresBackend
from taskyard.backends.postgres.schema import MIGRATIONS, SCHEMA_VERSION
from taskyard.core.ids import new_id, new_id_after
from taskyard.core.job import JobDraft, JobStatus
from taskyard.core.settle import Settle
from taskyard.core.workflow import Edge, Policy, WorkflowDraft, WorkflowStatus, map_step_name
from tests.support.postgres import isolated_url

pytestmark = pytest.mark.timeout(120)

S = JobStatus


def _libpq(url: str) -> str:
    """The URL without taskyard's own parameters, as an application would connect."""
    return url.split("?", 1)[0]


@pytest.fixture
async def backend() -> AsyncIterator[PostgresBackend]:
    async with isolated_url() as url:
        backend = PostgresBackend(url)
        await backend.open()
        try:
            yield backend
        finally:
            await backend.close()


def _fan_in(parents: int) -> tuple[WorkflowDraft, list[str], str]:
    """`parents` root steps and one step after all of them; returns the draft, the parents'
    ids and the child's id."""
    workflow_id = new_id()
    ids: list[str] = []
    for _ in range(parents + 1):
        ids.append(new_id_after(ids[-1] if ids else None))
    steps = [
        JobDraft(id=ids[i], task="t.fetch", queue="default", payload=i, workflow_id=workflow_id,
                 step=map_step_name("fetch", i))
        for i in range(parents)
    ]  # fmt: skip
    child = JobDraft(id=ids[-1], task="t.report", queue="default", payload=None,
                     workflow_id=workflow_id, step="report")  # fmt: skip
    edges = tuple(Edge(p.id, child.id, Policy.FAIL) for p in steps)
    draft = WorkflowDraft(workflow_id, "fan-in", (*steps, child), edges)
    return draft, [p.id for p in steps], child.id


async def _counts(backend: PostgresBackend, workflow_id: str) -> tuple[int, int, int]:
    """(workflows, steps, edges) stored under `workflow_id`."""
    s = backend.schema
    async with await psycopg.AsyncConnection.connect(backend.config.conninfo, autocommit=True) as conn:
        cur = await conn.execute(
            f"SELECT (SELECT count(*) FROM {s}.workflows WHERE id = %(w)s), "
            f"(SELECT count(*) FROM {s}.jobs WHERE workflow_id = %(w)s), "
            f"(SELECT count(*) FROM {s}.workflow_edges WHERE workflow_id = %(w)s)",
            {"w": workflow_id},
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def test_a_rolled_back_transaction_leaves_no_workflow_step_or_edge(backend: PostgresBackend) -> None:
    draft, _, _ = _fan_in(3)
    conn = await psycopg.AsyncConnection.connect(_libpq(backend.url))
    async with conn, conn.transaction(force_rollback=True):
        stored = await backend.workflow_enqueue_in_transaction(connection=conn, workflow=draft)
        assert [j.status for j in stored.steps] == [S.PENDING, S.PENDING, S.PENDING, S.BLOCKED]
        assert len(stored.edges) == 3
        assert await backend.workflow_get(workflow_id=draft.id) is None  # not committed
    assert await _counts(backend, draft.id) == (0, 0, 0)
    assert await backend.job_claim(queues=None, limit=10, worker_id="w", lease=30) == []


async def test_a_committed_transaction_makes_the_roots_claimable(backend: PostgresBackend) -> None:
    draft, parents, child = _fan_in(2)
    conn = await psycopg.AsyncConnection.connect(_libpq(backend.url))
    async with conn:
        async with conn.transaction():
            await backend.workflow_enqueue_in_transaction(connection=conn, workflow=draft)
        # Retried after the commit (a lost reply): the stored workflow, unchanged.
        again = await backend.workflow_enqueue_in_transaction(connection=conn, workflow=draft)
        assert again.id == draft.id
    assert await _counts(backend, draft.id) == (1, 3, 2)
    claimed = await backend.job_claim(queues=None, limit=10, worker_id="w", lease=30)
    assert sorted(j.id for j in claimed) == sorted(parents)
    await backend.jobs_settle(outcomes=[Settle.completed(j.id, j.lease_token or "", None) for j in claimed])
    got = await backend.job_get(job_id=child)
    assert got is not None and got.status is S.PENDING


async def test_a_sync_connection_enqueues_in_its_transaction(backend: PostgresBackend) -> None:
    kept, _, _ = _fan_in(1)
    dropped, _, _ = _fan_in(1)

    def in_a_thread() -> None:
        with psycopg.connect(_libpq(backend.url)) as conn:
            with conn.transaction(force_rollback=True):
                asyncio.run(backend.workflow_enqueue_in_transaction(connection=conn, workflow=dropped))
            with conn.transaction():
                asyncio.run(backend.workflow_enqueue_in_transaction(connection=conn, workflow=kept))

    await asyncio.to_thread(in_a_thread)
    assert await _counts(backend, dropped.id) == (0, 0, 0)
    assert await _counts(backend, kept.id) == (1, 2, 1)


async def test_other_connection_types_are_refused(backend: PostgresBackend) -> None:
    draft, _, _ = _fan_in(1)
    with pytest.raises(TypeError, match="driver_connection"):
        await backend.workflow_enqueue_in_transaction(connection=object(), workflow=draft)


async def test_parents_settled_at_once_from_several_instances_unblock_the_child(
    backend: PostgresBackend,
) -> None:
    """Each parent's settle commits on its own connection, concurrently with the others: the
    last one to commit must see every other edge settled, however they interleave."""
    draft, parents, child = _fan_in(40)
    await backend.workflow_enqueue(workflow=draft)
    claimed = await backend.job_claim(queues=None, limit=100, worker_id="w", lease=60)
    assert len(claimed) == len(parents)
    others = [PostgresBackend(backend.url) for _ in range(8)]
    try:
        for b in others:
            await b.open()

        async def settle(i: int) -> None:
            job = claimed[i]
            b = others[i % len(others)]
            (answer,) = await b.jobs_settle(outcomes=[Settle.completed(job.id, job.lease_token or "", i)])
            assert answer.owned

        await asyncio.gather(*(settle(i) for i in range(len(claimed))))
    finally:
        for b in others:
            await b.close()
    got = await backend.job_get(job_id=child)
    assert got is not None and got.status is S.PENDING
    wf = await backend.workflow_get(workflow_id=draft.id)
    assert wf is not None and {e.state.value for e in wf.edges} == {"done"}


async def test_a_cancel_racing_settles_leaves_no_step_to_run(backend: PostgresBackend) -> None:
    draft, _, child = _fan_in(20)
    await backend.workflow_enqueue(workflow=draft)
    claimed = await backend.job_claim(queues=None, limit=100, worker_id="w", lease=60)
    other = PostgresBackend(backend.url)
    await other.open()
    try:
        settles = [
            other.jobs_settle(outcomes=[Settle.completed(j.id, j.lease_token or "", None)]) for j in claimed
        ]
        results = await asyncio.gather(backend.workflow_cancel(workflow_id=draft.id), *settles)
    finally:
        await other.close()
    assert all(a.owned for answers in results[1:] for a in answers)  # type: ignore[union-attr]
    wf = await backend.workflow_get(workflow_id=draft.id)
    assert wf is not None and wf.status is WorkflowStatus.CANCELLED
    got = await backend.job_get(job_id=child)
    assert got is not None and got.status is S.CANCELLED


async def test_jobs_stored_before_workflows_read_back_after_the_migration() -> None:
    async with isolated_url() as url:
        backend = PostgresBackend(url)
        s = backend.schema
        async with await psycopg.AsyncConnection.connect(backend.config.conninfo, autocommit=True) as conn:
            for sql in MIGRATIONS[: SCHEMA_VERSION - 1]:
                await conn.execute(sql.replace("{s}", s))  # type: ignore[arg-type]
            await conn.execute(
                f"INSERT INTO {s}.meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION - 1),)
            )
            await conn.execute(
                f"INSERT INTO {s}.jobs (id, task, queue, payload, status, run_at, created_at) "
                "VALUES ('old', 't', 'default', '1', 'pending', now(), now())"
            )
        assert await backend.migrate() == SCHEMA_VERSION
        await backend.open()
        try:
            old = await backend.job_get(job_id="old")
            assert old is not None and old.workflow_id is None and old.step is None and old.meta == {}
            (job,) = await backend.job_enqueue_many(
                drafts=[JobDraft(id=new_id(), task="t", queue="default", payload=None, meta={"traceparent": "00-a-b-01"})]
            )
            got = await backend.job_get(job_id=job.id)
            assert got is not None and got.meta == {"traceparent": "00-a-b-01"}
        finally:
            await backend.close()
