"""SQLite-only behaviour: URL options, migrations, schema versions, durability, wake-ups
across connections, and several processes claiming from one file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskyard.backends import backend_from_url
from taskyard.backends.sqlite import SCHEMA_VERSION, SqliteBackend
from taskyard.backends.sqlite.connection import parse_url
from taskyard.core.ids import new_id
from taskyard.core.job import JobDraft, JobStatus
from taskyard.core.schedule import Schedule
from taskyard.errors import ConfigError, SchemaVersionError

T0 = datetime(2026, 11, 22, 12, tzinfo=UTC)


def _url(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}{query}"


def _draft(i: int = 0, queue: str = "default") -> JobDraft:
    return JobDraft(id=new_id(), task="t", queue=queue, payload={"i": i})


def test_url_paths_and_options() -> None:
    assert parse_url("sqlite:///taskyard.db").path == "taskyard.db"
    assert parse_url("sqlite:///data/q.db").path == "data/q.db"
    assert parse_url("sqlite:////var/lib/q.db").path == "/var/lib/q.db"
    opts = parse_url("sqlite:///q.db?synchronous=FULL&busy_timeout=250")
    assert (opts.synchronous, opts.busy_timeout) == ("full", 250)
    assert parse_url("sqlite:///q.db").synchronous == "normal"
    with pytest.raises(ConfigError, match="synchronous"):
        parse_url("sqlite:///q.db?synchronous=sometimes")
    with pytest.raises(ConfigError, match="journal"):
        parse_url("sqlite:///q.db?journal=off")
    with pytest.raises(ConfigError):
        parse_url("sqlite://")


async def test_backend_from_url_builds_sqlite(tmp_path: Path) -> None:
    backend = backend_from_url(_url(tmp_path / "a.db"))
    assert isinstance(backend, SqliteBackend)


async def test_open_sets_wal_and_synchronous(tmp_path: Path) -> None:
    for query, level in (("", 1), ("?synchronous=full", 2)):
        backend = SqliteBackend(_url(tmp_path / f"s{level}.db", query))
        await backend.open()
        try:
            mode = await backend._db.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
            sync = await backend._db.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
            assert (mode, sync) == ("wal", level)
        finally:
            await backend.close()


async def test_open_creates_parent_dirs_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "q.db"
    backend = SqliteBackend(_url(path))
    await backend.open()
    await backend.open()  # idempotent
    try:
        assert await backend.migrate() == SCHEMA_VERSION
        await backend.ping()
    finally:
        await backend.close()
        await backend.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM taskyard_schema").fetchone()[0] == SCHEMA_VERSION


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    backend = SqliteBackend(_url(path))
    await backend.open()
    await backend.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE taskyard_schema SET version = ?", (SCHEMA_VERSION + 1,))
    again = SqliteBackend(_url(path))
    with pytest.raises(SchemaVersionError, match="newer"):
        await again.open()
    await again.close()


async def test_jobs_survive_reopen(tmp_path: Path) -> None:
    url = _url(tmp_path / "q.db")
    first = SqliteBackend(url)
    await first.open()
    (job,) = await first.job_enqueue_many(drafts=[_draft(7)])
    await first.close()
    second = SqliteBackend(url)
    await second.open()
    try:
        stored = await second.job_get(job_id=job.id)
        assert stored is not None and stored.payload == {"i": 7}
        assert stored.status is JobStatus.PENDING
    finally:
        await second.close()


async def test_enqueue_on_another_connection_wakes_a_waiter(tmp_path: Path) -> None:
    url = _url(tmp_path / "q.db")
    worker_side, client_side = SqliteBackend(url), SqliteBackend(url)
    await worker_side.open()
    await client_side.open()
    try:
        await worker_side.job_claim(queues=None, limit=1, worker_id="w", lease=30)
        waiter = asyncio.create_task(worker_side.wait_for_jobs(queues=None, timeout=60))
        deadline = time.monotonic() + 10
        while not waiter.done():
            assert time.monotonic() < deadline, "waiter never saw the other connection's enqueue"
            await client_side.job_enqueue_many(drafts=[_draft()])
            await asyncio.wait((waiter,), timeout=0.2)
    finally:
        await worker_side.close()
        await client_side.close()


_CLAIMER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from taskyard.backends.sqlite import SqliteBackend
    from taskyard.core.settle import Settle

    async def main(url, complete):
        backend = SqliteBackend(url)
        await backend.open()
        # Start together, so the claims really overlap.
        barrier, n = sys.argv[4], int(sys.argv[5])
        open(os.path.join(barrier, sys.argv[3]), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(barrier)) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        got = []
        idle = 0
        while idle < 3:
            jobs = await backend.job_claim(queues=None, limit=7, worker_id=sys.argv[3], lease=60)
            if not jobs:
                idle += 1
                await backend.wait_for_jobs(queues=None, timeout=0.05)
                continue
            idle = 0
            got.extend(j.id for j in jobs)
            if complete:
                await backend.jobs_settle(
                    outcomes=[Settle.completed(j.id, j.lease_token) for j in jobs],
                )
        await backend.close()
        print(json.dumps(got))

    asyncio.run(main(sys.argv[1], sys.argv[2] == "1"))
    """
)


def _claimers(url: str, n: int, *, complete: bool, barrier: Path) -> list[list[str]]:
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CLAIMER,
                url,
                "1" if complete else "0",
                f"w{k}",
                str(barrier),
                str(n),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(n)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


async def test_processes_sharing_a_file_never_claim_a_job_twice(tmp_path: Path) -> None:
    url = _url(tmp_path / "q.db")
    backend = SqliteBackend(url)
    await backend.open()
    n_jobs = 1500
    try:
        await backend.job_enqueue_many(drafts=[_draft(i) for i in range(n_jobs)])
        results = await asyncio.to_thread(_claimers, url, 3, complete=True, barrier=tmp_path / "go")
        flat = [job_id for got in results for job_id in got]
        assert all(got for got in results), "every process should have claimed some jobs"
        assert len(flat) == n_jobs
        assert len(set(flat)) == n_jobs
        counts = {c.queue: c for c in await backend.queue_counts()}
        assert counts["default"].get(JobStatus.COMPLETED) == n_jobs
    finally:
        await backend.close()


async def test_concurrency_limit_holds_across_processes(tmp_path: Path) -> None:
    url = _url(tmp_path / "q.db")
    backend = SqliteBackend(url)
    await backend.open()
    try:
        await backend.queue_update(queue="default", concurrency=4)
        await backend.job_enqueue_many(drafts=[_draft(i) for i in range(50)])
        results = await asyncio.to_thread(
            _claimers, url, 3, complete=False, barrier=tmp_path / "go"
        )
        assert sum(len(got) for got in results) == 4
    finally:
        await backend.close()


def _legacy_schedule_doc(name: str, source: str) -> str:
    """A schedule document as an older taskyard wrote it: no declarer, no confirmed_at."""
    doc = Schedule(name=name, task="t", every=60.0, source=source).to_json()
    for key in ("declarer", "declarer_started_at", "confirmed_at"):
        del doc[key]
    return json.dumps(doc)


async def test_declared_schedules_stored_before_the_upgrade_are_kept_for_the_grace(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    backend = SqliteBackend(_url(path))
    await backend.open()
    try:
        with sqlite3.connect(path) as conn:
            for name, source in (("declared", "code"), ("orphan", "code"), ("runtime", "api")):
                conn.execute(
                    "INSERT INTO schedules (name, owner, enabled, next_fire_at, last_fire_at, data) "
                    "VALUES (?, NULL, 1, NULL, NULL, ?)", (name, _legacy_schedule_doc(name, source)),
                )
        assert await backend.schedules_confirm(names=["declared", "runtime"], now=T0) == 1
        assert await backend.schedules_expire_declared(grace=300, now=T0) == []
        orphan = await backend.schedule_get(name="orphan")
        assert orphan is not None and orphan.confirmed_at == T0 and orphan.declarer is None
        later = T0 + timedelta(seconds=301)
        await backend.schedules_confirm(names=["declared"], now=later)
        assert await backend.schedules_expire_declared(grace=300, now=later) == ["orphan"]
        assert [s.name for s in await backend.schedules_list()] == ["declared", "runtime"]
    finally:
        await backend.close()


async def test_a_worker_row_written_before_tasks_were_registered_reads_as_knowing_none(
    tmp_path: Path,
) -> None:
    """Workers are stored as JSON: a row of an older taskyard (no `tasks`) needs no migration."""
    backend = SqliteBackend(_url(tmp_path / "t.db"))
    await backend.open()
    try:
        with sqlite3.connect(tmp_path / "t.db") as conn:
            data = {"host": "h", "pid": 1, "queues": ["*"], "concurrency": 4,
                    "started_at": 1_700_000_000_000_000, "current_jobs": []}
            conn.execute("INSERT INTO workers (id, last_heartbeat, data) VALUES (?, ?, ?)",
                         ("old", 1_700_000_000_000_000, json.dumps(data)))
        (worker,) = await backend.workers_list()
        assert worker.id == "old" and worker.tasks == ()
    finally:
        await backend.close()


async def test_a_version_1_file_upgrades_and_its_jobs_get_rescue_defaults(tmp_path: Path) -> None:
    from taskyard.backends.sqlite.schema import MIGRATIONS

    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE taskyard_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO taskyard_schema (version) VALUES (1)")
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO jobs (id, task, queue, payload, status, priority, run_at, attempt, "
            "max_attempts, created_at) VALUES ('01OLDJOB000000000000000000', 't', 'default', "
            "'null', 'pending', 0, 0, 0, 1, 0)"
        )
    backend = SqliteBackend(_url(path))
    await backend.open()
    try:
        job = await backend.job_get(job_id="01OLDJOB000000000000000000")
        assert job is not None and job.rescues == 0 and job.max_rescues == 3
        (claimed,) = await backend.job_claim(queues=None, limit=1, worker_id="w", lease=1)
        report = await backend.jobs_rescue_expired(now=claimed.lease_expires_at + timedelta(seconds=1))
        assert report.rescued == (claimed.id,)
    finally:
        await backend.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM taskyard_schema").fetchone()[0] == SCHEMA_VERSION


async def test_rescue_without_now_ignores_the_wall_clock_and_goes_by_what_it_saw(tmp_path: Path) -> None:
    """A worker 2 minutes behind writes leases that look long expired by the wall clock; a
    rescuer passing no `now` still leaves the job alone while the lease keeps changing, and
    takes it once it saw the lease unchanged for a whole lease."""
    from taskyard.clock import utcnow
    from tests.support.waiting import wait_until

    backend = SqliteBackend(_url(tmp_path / "q.db"))
    await backend.open()
    try:
        behind = lambda: utcnow() - timedelta(minutes=2)  # noqa: E731
        (job,) = await backend.job_enqueue_many(drafts=[_draft()], now=behind())
        (claimed,) = await backend.job_claim(queues=None, limit=1, worker_id="w", lease=0.5, now=behind())
        assert claimed.lease_expires_at is not None and claimed.lease_expires_at < utcnow()
        for _ in range(5):
            assert (await backend.jobs_rescue_expired()).rescued == ()
            report = await backend.jobs_extend_leases(
                leases={job.id: claimed.lease_token or ""}, lease=0.5, now=behind()
            )
            assert report.lost == frozenset()

        async def rescued() -> tuple[str, ...]:
            return (await backend.jobs_rescue_expired()).rescued

        assert await wait_until(rescued, timeout=30, what="the rescue") == (job.id,)
        stored = await backend.job_get(job_id=job.id)
        assert stored is not None and stored.status is JobStatus.PENDING and stored.rescues == 1
    finally:
        await backend.close()
