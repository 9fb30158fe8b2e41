"""PostgreSQL specifics beyond the conformance suite: the versioned schema, URL parameters,
and claims racing from several backend instances (as several machines would).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from taskyard.backends import backend_from_url
from taskyard.backends.postgres import PostgresBackend
from taskyard.backends.postgres.schema import SCHEMA_VERSION
from taskyard.core.ids import new_id
from taskyard.core.job import JobDraft, JobStatus
from taskyard.core.schedule import Schedule
from taskyard.core.settle import Settle
from taskyard.errors import ConfigError, SchemaVersionError
from tests.support.postgres import isolated_url


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with isolated_url() as url:
        yield url


def _draft(queue: str = "default") -> JobDraft:
    return JobDraft(id=new_id(), task="t", queue=queue, payload=None)


async def _set_version(backend: PostgresBackend, version: int) -> None:
    async with await psycopg.AsyncConnection.connect(
        backend.config.conninfo, autocommit=True
    ) as conn:
        await conn.execute(
            f"UPDATE {backend.schema}.meta SET value = %s WHERE key = 'schema_version'",
            (str(version),),
        )


async def test_fresh_schema_is_created_at_open_and_migrate_is_idempotent(url: str) -> None:
    backend = backend_from_url(url)
    assert isinstance(backend, PostgresBackend)
    assert await backend.migrate() == SCHEMA_VERSION  # before open: its own connection
    await backend.open()
    try:
        assert await backend.migrate() == SCHEMA_VERSION
        await backend.ping()
    finally:
        await backend.close()


async def test_open_refuses_a_schema_behind_until_migrated(url: str) -> None:
    backend = PostgresBackend(url)
    await backend.open()
    await backend.close()
    await _set_version(backend, SCHEMA_VERSION - 1)
    with pytest.raises(SchemaVersionError, match="taskyard migrate"):
        await backend.open()
    await _set_version(backend, SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionError, match="newer"):
        await backend.open()
    await _set_version(backend, SCHEMA_VERSION)
    await backend.open()  # a backend that failed to open can be opened later
    await backend.close()


def test_url_parameters() -> None:
    backend = PostgresBackend("postgresql://u@h:5/db?schema=jobs_a&pool_max=3&sslmode=disable")
    assert backend.schema == "jobs_a" and backend.config.pool_max == 3
    assert "sslmode=disable" in backend.config.conninfo and "schema" not in backend.config.conninfo
    with pytest.raises(ConfigError, match="schema"):
        PostgresBackend("postgresql://h/db?schema=Robert'); DROP")
    with pytest.raises(ConfigError, match="pool"):
        PostgresBackend("postgresql://h/db?pool_max=lots")


async def test_racing_claimers_never_share_a_job_and_respect_queue_concurrency(url: str) -> None:
    replicas = [PostgresBackend(url) for _ in range(4)]
    for b in replicas:
        await b.open()
    try:
        await replicas[0].queue_update(queue="capped", concurrency=3)
        await replicas[0].job_enqueue_many(drafts=[_draft() for _ in range(400)])
        await replicas[0].job_enqueue_many(drafts=[_draft("capped") for _ in range(20)])
        claimed: list[str] = []

        async def claim_all(b: PostgresBackend, name: str) -> None:
            while True:
                jobs = await b.job_claim(queues=None, limit=7, worker_id=name, lease=60)
                if not jobs:
                    return
                claimed.extend(j.id for j in jobs)
                # Complete everything except the capped queue, which stays at its limit.
                await b.jobs_settle(
                    outcomes=[
                        Settle.completed(j.id, j.lease_token or "") for j in jobs if j.queue == "default"
                    ],
                )

        await asyncio.gather(*(claim_all(b, f"w{i}") for i, b in enumerate(replicas)))
        assert len(claimed) == len(set(claimed)) == 403
        counts = {c.queue: c for c in await replicas[0].queue_counts()}
        assert counts["capped"].get(JobStatus.RUNNING) == 3
        assert counts["capped"].get(JobStatus.PENDING) == 17
        assert counts["default"].get(JobStatus.COMPLETED) == 400
    finally:
        for b in replicas:
            await b.close()


async def test_declared_schedules_stored_before_the_upgrade_are_kept_for_the_grace(url: str) -> None:
    """Documents written by an older taskyard have no declarer and no confirmed_at keys."""
    t0 = datetime(2026, 11, 22, 12, tzinfo=UTC)
    backend = PostgresBackend(url)
    await backend.open()
    try:
        async with await psycopg.AsyncConnection.connect(backend.config.conninfo, autocommit=True) as conn:
            for name, source in (("declared", "code"), ("orphan", "code"), ("runtime", "api")):
                doc = Schedule(name=name, task="t", every=60.0, source=source).to_json()
                for key in ("declarer", "declarer_started_at", "confirmed_at"):
                    del doc[key]
                await conn.execute(
                    f"INSERT INTO {backend.schema}.schedules (name, owner, enabled, data) "
                    "VALUES (%s, NULL, true, %s::jsonb)", (name, json.dumps(doc)),
                )
        assert await backend.schedules_confirm(names=["declared", "runtime"], now=t0) == 1
        assert await backend.schedules_expire_declared(grace=300, now=t0) == []
        orphan = await backend.schedule_get(name="orphan")
        assert orphan is not None and orphan.confirmed_at == t0 and orphan.declarer is None
        later = t0 + timedelta(seconds=301)
        await backend.schedules_confirm(names=["declared"], now=later)
        assert await backend.schedules_expire_declared(grace=300, now=later) == ["orphan"]
        assert [s.name for s in await backend.schedules_list()] == ["declared", "runtime"]
    finally:
        await backend.close()


async def test_a_version_1_schema_upgrades_in_place(url: str) -> None:
    """A store written by the previous version: its jobs and workers survive the upgrade, the
    old five-argument claim still works, and the new claim filters by task."""
    from taskyard.backends.postgres.schema import MIGRATIONS

    backend = PostgresBackend(url)
    async with await psycopg.AsyncConnection.connect(
        backend.config.conninfo, autocommit=True
    ) as conn:
        await conn.execute(MIGRATIONS[0].replace("{s}", backend.schema))
        await conn.execute(
            f"INSERT INTO {backend.schema}.meta (key, value) VALUES ('schema_version', '1')"
        )
        await conn.execute(
            f"INSERT INTO {backend.schema}.workers (id, host, pid, queues, concurrency, "
            "started_at, last_heartbeat) VALUES ('old', 'h', 1, '[\"*\"]', 4, now(), now())"
        )
        await conn.execute(
            f"INSERT INTO {backend.schema}.jobs (id, task, queue, status, run_at, created_at) "
            f"VALUES ('{new_id()}', 'old.task', 'default', 'pending', now(), now()), "
            f"('{new_id()}', 'new.task', 'default', 'pending', now(), now())"
        )
    assert await backend.migrate() == SCHEMA_VERSION
    await backend.open()
    try:
        (worker,) = await backend.workers_list()
        assert worker.id == "old" and worker.tasks == ()
        (job,) = await backend.job_claim(
            queues=None, limit=5, worker_id="w", lease=60, tasks=["new.task"]
        )
        assert job.task == "new.task"
        async with await psycopg.AsyncConnection.connect(
            backend.config.conninfo, autocommit=True
        ) as conn:
            cur = await conn.execute(
                f"SELECT task FROM {backend.schema}.claim(NULL, 5, 'old-version', 60, NULL)"
            )
            assert [row[0] for row in await cur.fetchall()] == ["old.task"]
    finally:
        await backend.close()


async def test_a_version_1_schema_upgrades_and_its_jobs_get_rescue_defaults(url: str) -> None:
    from taskyard.backends.postgres.schema import MIGRATIONS

    backend = PostgresBackend(url)
    async with await psycopg.AsyncConnection.connect(backend.config.conninfo, autocommit=True) as conn:
        await conn.execute(MIGRATIONS[0].replace("{s}", backend.schema))
        await conn.execute(
            f"INSERT INTO {backend.schema}.meta (key, value) VALUES ('schema_version', '1')"
        )
        await conn.execute(
            f"INSERT INTO {backend.schema}.jobs (id, task, queue, status, run_at, created_at) "
            "VALUES ('01OLDJOB000000000000000000', 't', 'default', 'pending', now(), now())"
        )
    with pytest.raises(SchemaVersionError, match="taskyard migrate"):
        await backend.open()
    assert await backend.migrate() == SCHEMA_VERSION
    await backend.open()
    try:
        job = await backend.job_get(job_id="01OLDJOB000000000000000000")
        assert job is not None and job.rescues == 0 and job.max_rescues == 3
        (claimed,) = await backend.job_claim(queues=None, limit=1, worker_id="w", lease=1)
        assert claimed.rescues == 0 and claimed.lease_expires_at is not None
        report = await backend.jobs_rescue_expired(now=claimed.lease_expires_at + timedelta(seconds=1))
        assert report.rescued == (claimed.id,)
    finally:
        await backend.close()



async def _plans_logged(conn: psycopg.AsyncConnection) -> list[str]:
    """The plans of every statement `conn` runs from now on (nested ones too), as auto_explain
    logs them to the session."""
    plans: list[str] = []
    conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
    await conn.execute("LOAD 'auto_explain'")
    for setting in ("auto_explain.log_min_duration = 0", "auto_explain.log_nested_statements = on",
                    "client_min_messages = log"):
        await conn.execute(f"SET {setting}")  # type: ignore[arg-type]
    return plans


async def _stats_of_jobs(conn: psycopg.AsyncConnection, schema: str) -> tuple[bool, int]:
    """(analyzed ever, rows modified since) of the jobs table, from a fresh statistics view."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    cur = await conn.execute(
        "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL, n_mod_since_analyze "
        "FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'jobs'", (schema,))
    row = await cur.fetchone()
    assert row is not None
    return bool(row[0]), int(row[1])


async def test_claims_and_listings_read_indexes_in_order_without_statistics(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a bulk load the planner has no statistics (autovacuum has not analyzed the
    table yet, or is off) and once sorted a queue's whole backlog for every claim; migration 8
    leaves claims only the ordered index scans, statistics or none. Listings are planned from
    the statistics that a large enqueue brings up to date (ANALYZE in the background)."""
    from taskyard.backends.postgres import backend as pg_backend
    from taskyard.core.job import JobFilter

    backend = PostgresBackend(url)
    await backend.open()
    s = backend.schema
    try:
        async with await psycopg.AsyncConnection.connect(backend.config.conninfo, autocommit=True) as conn:
            await conn.execute(
                f"INSERT INTO {s}.jobs (id, task, queue, payload, status, priority, run_at, "
                "attempt, max_attempts, created_at) SELECT lpad(i::text, 26, '0'), 't', "
                "CASE WHEN i % 4 = 0 THEN 'b' ELSE 'a' END, '{}', 'pending', i % 3, now(), 0, 1, "
                "now() FROM generate_series(1, 20000) i"
            )
            assert (await _stats_of_jobs(conn, s))[0] is False, "the test needs a table never analyzed"
            plans = await _plans_logged(conn)
            for queues in (["a"], ["a", "b"], None):
                plans.clear()
                cur = await conn.execute(
                    f"SELECT id, priority FROM {s}.claim(%s, 20, 'w', 60, NULL, NULL)", (queues,))
                rows = await cur.fetchall()
                assert len(rows) == 20 and {p for _, p in rows} == {2}
                candidates = next(p for p in plans if "SKIP LOCKED" in p)
                index = "jobs_ready" if queues is None else "jobs_ready_queue"
                assert f"Index Scan using {index} on jobs" in candidates, candidates
                assert "Bitmap" not in candidates and "Seq Scan on jobs" not in candidates, candidates
                assert "JIT" not in candidates, candidates

            # The enqueue that crosses the check (every 20,000 jobs; 10 here) finds more rows
            # modified than the table had at its last ANALYZE (never): it analyzes.
            monkeypatch.setattr(pg_backend, "ANALYZE_CHECK_EVERY", 10)
            for _ in range(200):  # the INSERT's counts reach the statistics views within ~1 s
                if (await _stats_of_jobs(conn, s))[1] >= 20_000:
                    break
                await asyncio.sleep(0.05)
            await backend.job_enqueue_many(drafts=[_draft("a") for _ in range(10)])
            assert backend._analyzing is not None
            await backend._analyzing
            assert (await _stats_of_jobs(conn, s))[0] is True
            # Newest first, stopping at the page's end (every job is pending: the primary key
            # serves that one as well as jobs_status_id would).
            for conds in ("status = 'pending'", "status = 'running'", "queue = 'b'",
                          "queue = 'a' AND status = 'running'"):
                cur = await conn.execute(
                    f"EXPLAIN SELECT * FROM {s}.jobs WHERE {conds} ORDER BY id DESC LIMIT 51")  # type: ignore[arg-type]
                plan = "\n".join(r[0] for r in await cur.fetchall())
                assert "Scan Backward using jobs_" in plan and "Sort" not in plan, plan
            # Not again until the table has outgrown this ANALYZE.
            last = "SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'jobs'"
            before = await (await conn.execute(last, (s,))).fetchone()
            await backend.job_enqueue_many(drafts=[_draft("a") for _ in range(10)])
            assert backend._analyzing is not None
            await backend._analyzing
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            assert await (await conn.execute(last, (s,))).fetchone() == before
        page = await backend.jobs_list(filter=JobFilter(queue="a", status=JobStatus.RUNNING), limit=5)
        assert len(page.jobs) == 5 and [j.id for j in page.jobs] == sorted((j.id for j in page.jobs), reverse=True)
    finally:
        await backend.close()
