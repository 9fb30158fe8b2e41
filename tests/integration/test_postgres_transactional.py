"""Transactional enqueue on PostgreSQL: a job exists if and only if the application's own
transaction commits (async and sync psycopg connections, the app's sync facade included).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from taskyard import JobStatus, Taskyard
from taskyard.backends.postgres import PostgresBackend
from taskyard.testing import drain
from tests.support.postgres import isolated_url

pytestmark = pytest.mark.timeout(60)


def _libpq(url: str) -> str:
    """The URL without taskyard's own parameters, as an application would connect."""
    return url.split("?", 1)[0]


@pytest.fixture
async def app() -> AsyncIterator[Taskyard]:
    async with isolated_url() as url:
        app = Taskyard(url)

        @app.task("orders.confirm")
        async def confirm(payload: dict[str, Any]) -> str:
            return f"confirmed {payload['order']}"

        await app.open()
        # The application's own table, in the test's schema (dropped with it).
        async with await psycopg.AsyncConnection.connect(_libpq(url), autocommit=True) as conn:
            await conn.execute(f"CREATE TABLE {_schema(app)}.orders (id int)")
        try:
            yield app
        finally:
            app.close()
            await app.aclose()


def _schema(app: Taskyard) -> str:
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    return backend.schema


async def test_async_connection_rollback_leaves_no_job(app: Taskyard) -> None:
    conn = await psycopg.AsyncConnection.connect(_libpq(app.backend.url))
    async with conn, conn.transaction(force_rollback=True):
        await conn.execute(f"INSERT INTO {_schema(app)}.orders VALUES (1)")
        job = await app.aenqueue("orders.confirm", {"order": 1}, connection=conn)
        # Inside the transaction the job is visible to it, and to nobody else.
        cur = await conn.execute(f"SELECT status FROM {_schema(app)}.jobs WHERE id = %s", (job.id,))
        assert (await cur.fetchone()) == ("pending",)
        assert await app.aget_job(job.id) is None
    assert await app.aget_job(job.id) is None
    await drain(app)
    assert await app.aget_job(job.id) is None


async def test_async_connection_commit_runs_the_job(app: Taskyard) -> None:
    conn = await psycopg.AsyncConnection.connect(_libpq(app.backend.url))
    async with conn, conn.transaction():
        await conn.execute(f"INSERT INTO {_schema(app)}.orders VALUES (2)")
        job = await app.aenqueue("orders.confirm", {"order": 2}, connection=conn)
        assert await app.aget_job(job.id) is None  # not committed yet
    await drain(app)
    done = await app.aget_job(job.id)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert done.result == "confirmed 2"


async def test_sync_facade_with_sync_connection(app: Taskyard) -> None:
    url, schema = _libpq(app.backend.url), _schema(app)

    def in_a_thread() -> tuple[str, str]:
        # An ordinary sync application: its own connection, the app's sync facade.
        with psycopg.connect(url) as conn:
            with conn.transaction(force_rollback=True):
                dropped = app.enqueue("orders.confirm", {"order": 3}, connection=conn)
            with conn.transaction():
                conn.execute(f"INSERT INTO {schema}.orders VALUES (4)")
                kept = app.enqueue_many([("orders.confirm", {"order": 4})], connection=conn)[0]
        return dropped.id, kept.id

    dropped, kept = await asyncio.to_thread(in_a_thread)
    await drain(app)
    assert await app.aget_job(dropped) is None
    done = await app.aget_job(kept)
    assert done is not None and done.status is JobStatus.COMPLETED


async def test_notification_only_after_commit(app: Taskyard) -> None:
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    # Start listening (the first wait starts the listener) before anything is enqueued.
    await backend.wait_for_jobs(queues=["default"], timeout=0.01)
    await asyncio.wait_for(backend._listener.connected.wait(), 10)  # type: ignore[union-attr]
    async with await psycopg.AsyncConnection.connect(_libpq(backend.url)) as conn:
        async with conn.transaction():
            await app.aenqueue("orders.confirm", {"order": 5}, connection=conn)
            waiter = asyncio.create_task(backend.wait_for_jobs(queues=["default"], timeout=30))
            await asyncio.sleep(0)  # let the waiter register
            assert not waiter.done()
        # The commit delivers the NOTIFY; the waiter returns long before its 30 s timeout.
        await asyncio.wait_for(waiter, 10)


async def test_other_connection_types_are_refused(app: Taskyard) -> None:
    with pytest.raises(TypeError, match="driver_connection"):
        await app.aenqueue("orders.confirm", {"order": 6}, connection=object())


async def test_a_workflow_enqueued_in_a_rolled_back_transaction_leaves_nothing_and_a_committed_one_runs(
    app: Taskyard,
) -> None:
    def build() -> Any:
        wf = app.workflow("orders")
        confirms = wf.map("orders.confirm", [{"order": 1}, {"order": 2}], name="confirm")
        wf.step("orders.confirm", {"order": 3}, name="last", after=confirms)
        return wf

    conn = await psycopg.AsyncConnection.connect(_libpq(app.backend.url))
    async with conn:
        async with conn.transaction(force_rollback=True):
            dropped = await build().aenqueue(connection=conn)
        assert await app.aget_workflow(dropped.id) is None
        assert await app.aget_job(dropped.steps[0].id) is None
        async with conn.transaction():
            kept = await build().aenqueue(connection=conn)
    await drain(app)
    done = await app.aget_workflow(kept.id)
    assert done is not None and [j.result for j in done.steps] == [
        "confirmed 1", "confirmed 2", "confirmed 3",
    ]
