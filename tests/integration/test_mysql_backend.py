"""What only the MySQL/MariaDB backend has: its URL, the database created on first use, the
versioned schema, stored values kept exactly, and enqueue inside the caller's transaction.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from taskyard.backends import backend_from_url
from taskyard.backends.mysql import MysqlBackend
from taskyard.backends.mysql.connection import MysqlUrl
from taskyard.backends.mysql.schema import SCHEMA_VERSION
from taskyard.core.ids import new_id
from taskyard.core.job import JobDraft, JobStatus
from taskyard.errors import ConfigError
from tests.support.backends import opened_backend
from tests.support.mysql import MYSQL_URL, database_url, isolated_url

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://root@127.0.0.1:3306", "names no database"),
        ("mysql://127.0.0.1/app", "names no user"),
        ("mysql://root@:3306/app", "names no host"),
        ("mysql://root@127.0.0.1:port/app", "port is not a number"),
        ("mysql://root@127.0.0.1/my-app", "must be 1-64 letters"),
        ("mysql://root@127.0.0.1/app?pool_size=3", "unknown MySQL URL parameter(s): pool_size"),
        ("mysql://root@127.0.0.1/app?pool_max=x", "bad pool parameter"),
        ("mysql://root@127.0.0.1/app?pool_min=5&pool_max=2", "pool_min <= pool_max"),
    ],
)
def test_a_bad_url_is_refused_naming_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        backend_from_url(url)


def test_a_url_keeps_user_password_host_port_and_database() -> None:
    parsed = MysqlUrl.parse("mysql://app:s%40cret@db.internal:3307/jobs?pool_max=4")
    assert (parsed.user, parsed.password, parsed.host, parsed.port, parsed.database, parsed.pool_max) == (
        "app", "s@cret", "db.internal", 3307, "jobs", 4,
    )
    assert MysqlUrl.parse("mysql://root@localhost/x").port == 3306


@contextlib.asynccontextmanager
async def _absent_database() -> AsyncIterator[str]:
    """The URL of a database that does not exist yet; dropped afterwards if created."""
    async with isolated_url() as scratch:
        name = "ty_" + os.urandom(6).hex()
        url = database_url(MYSQL_URL, name)
        try:
            yield url
        finally:
            async with opened_backend(scratch) as admin:
                assert isinstance(admin, MysqlBackend)
                await admin._run("drop", lambda cur: cur.execute(f"DROP DATABASE IF EXISTS {name}"))


async def test_open_creates_a_missing_database_and_its_schema() -> None:
    async with _absent_database() as url:
        backend = backend_from_url(url)
        assert await backend.schema_version() == 0
        await backend.open()
        try:
            assert await backend.schema_version() == SCHEMA_VERSION
            assert await backend.migrate() == SCHEMA_VERSION  # current: nothing to do, same answer
        finally:
            await backend.close()


async def test_migrate_creates_the_database_and_the_schema() -> None:
    async with _absent_database() as url:
        backend = backend_from_url(url)
        assert await backend.migrate() == SCHEMA_VERSION
        assert await backend.schema_version() == SCHEMA_VERSION


async def test_values_are_stored_exactly() -> None:
    """JSON keeps its key order (text, not MySQL's binary JSON), times their microseconds."""
    async with isolated_url() as url, opened_backend(url) as backend:
        run_at = datetime(2031, 5, 6, 7, 8, 9, 123457, tzinfo=UTC)
        payload = {"zeta": 1, "alpha": [1.5, "ü", None], "mid": {"b": True, "a": False}}
        (job,) = await backend.job_enqueue_many(
            drafts=[JobDraft(id=new_id(), task="t", queue="Q", payload=payload, run_at=run_at)]
        )
        stored = await backend.job_get(job_id=job.id)
        assert stored is not None and stored == job
        assert list(stored.payload) == ["zeta", "alpha", "mid"] and stored.run_at == run_at
        # Names compare byte for byte, as on every other backend ('Q' is not 'q').
        assert [q.queue for q in await backend.queue_counts()] == ["Q"]
        assert await backend.job_claim(queues=["q"], limit=1, worker_id="w", lease=30, now=run_at) == []


async def test_store_time_is_the_servers_clock() -> None:
    async with isolated_url() as url, opened_backend(url) as backend:
        before = datetime.now(UTC)
        at = await backend.store_time()
        assert at is not None and at.tzinfo is not None
        assert abs((at - before).total_seconds()) < 5  # the server runs on this machine


async def test_enqueue_in_the_callers_transaction_exists_only_if_it_commits() -> None:
    import asyncmy

    async with isolated_url() as url, opened_backend(url) as backend:
        assert isinstance(backend, MysqlBackend)
        parts = urlsplit(url)
        conn = await asyncmy.connect(
            host=parts.hostname, port=parts.port or 3306, user=parts.username, password="",
            db=parts.path.lstrip("/"), autocommit=False,
        )
        try:
            draft = JobDraft(id=new_id(), task="t", queue="q", payload={"n": 1})
            await conn.begin()
            (job,) = await backend.job_enqueue_in_transaction(connection=conn, drafts=[draft])
            assert job.status is JobStatus.PENDING
            assert await backend.job_get(job_id=draft.id) is None  # not committed yet
            await conn.rollback()
            assert await backend.job_get(job_id=draft.id) is None

            kept = JobDraft(id=new_id(), task="t", queue="q", payload={"n": 2}, unique_key="k")
            await conn.begin()
            await backend.job_enqueue_in_transaction(connection=conn, drafts=[kept])
            await conn.commit()
            stored = await backend.job_get(job_id=kept.id)
            assert stored is not None and stored.payload == {"n": 2}
            # The unique key is held: a second draft with it returns the committed job.
            await conn.begin()
            (same,) = await backend.job_enqueue_in_transaction(
                connection=conn, drafts=[JobDraft(id=new_id(), task="t", queue="q", payload={}, unique_key="k")]
            )
            await conn.commit()
            assert same.id == kept.id
        finally:
            conn.close()
        with pytest.raises(TypeError, match="asyncmy Connection"):
            await backend.job_enqueue_in_transaction(connection=object(), drafts=[draft])


async def test_a_unique_key_longer_than_the_index_still_holds() -> None:
    async with isolated_url() as url, opened_backend(url) as backend:
        key = "report:" + "x" * 5000
        first, second = await backend.job_enqueue_many(drafts=[
            JobDraft(id=new_id(), task="t", queue="q", payload={}, unique_key=key),
            JobDraft(id=new_id(), task="t", queue="q", payload={}, unique_key=key),
        ])
        assert second.id == first.id and first.unique_key == key
        (again,) = await backend.job_enqueue_many(
            drafts=[JobDraft(id=new_id(), task="t", queue="q", payload={}, unique_key=key)]
        )
        assert again.id == first.id
        stored = await backend.job_get(job_id=first.id)
        assert stored is not None and stored.unique_key == key


async def test_transactions_run_at_read_committed() -> None:
    async def isolation(cur) -> str:  # type: ignore[no-untyped-def]
        await cur.execute("SELECT VERSION()")
        (version,) = await cur.fetchone()
        # MariaDB before 11.1 names it tx_isolation; MySQL 8 only transaction_isolation.
        name = "tx_isolation" if "mariadb" in version.lower() else "transaction_isolation"
        await cur.execute(f"SELECT @@session.{name}")
        return str((await cur.fetchone())[0])

    async with isolated_url() as url, opened_backend(url) as backend:
        assert isinstance(backend, MysqlBackend)
        assert await backend._run("isolation", isolation) == "READ-COMMITTED"
