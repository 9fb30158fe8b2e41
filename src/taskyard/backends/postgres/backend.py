"""`PostgresBackend`: jobs in PostgreSQL through psycopg 3's async pool.

Claims take `FOR UPDATE SKIP LOCKED` batches in one round-trip (a PL/pgSQL function), batch
writes use `unnest` arrays, wake-ups come over LISTEN/NOTIFY. Times are the caller's `now`
or, when None, the database's clock, so machines with skewed clocks still agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool
from psycopg.types.json import set_json_loads

from taskyard.backends.postgres.admin import JobAdminOps
from taskyard.backends.postgres.catalog import NOW, CatalogOps
from taskyard.backends.postgres.connection import PostgresUrl, converted_errors, is_connection_error
from taskyard.backends.postgres.enqueue import EnqueueSql, enqueue_async, enqueue_sync
from taskyard.backends.postgres.graph import finishing
from taskyard.backends.postgres.listener import Listener
from taskyard.backends.postgres.rows import JOB_COLUMNS, job_from_row, progress_json
from taskyard.backends.postgres.schema import SCHEMA_VERSION, apply_migrations, read_version
from taskyard.backends.postgres.settle import SettleOps
from taskyard.backends.postgres.stats import StatsOps
from taskyard.backends.postgres.workflows import WorkflowOps
from taskyard.backends.skew import clock_skew_warning
from taskyard.core.job import (
    Job,
    JobDraft,
    JobFilter,
    JobPage,
    JobStatus,
    LeaseReport,
    Progress,
)
from taskyard.core.payload import decode_stored
from taskyard.errors import (
    BackendUnavailable,
    LeaseLost,
    SchemaVersionError,
)

__all__ = ("PostgresBackend",)

log = logging.getLogger("taskyard.backends.postgres")

#: Jobs this process enqueues between two looks at the jobs table's statistics.
ANALYZE_CHECK_EVERY = 20_000
#: The table is analyzed when it has more rows modified since its last ANALYZE than both this
#: and the rows it had then (see `PostgresBackend._analyze_if_outgrown`).
ANALYZE_MIN_ROWS = 10_000


class PostgresBackend(JobAdminOps, SettleOps, WorkflowOps, CatalogOps, StatsOps):
    """PostgreSQL backend (`postgresql://...?schema=taskyard`); see `docs/postgres.md`.

    `open()` creates the schema when it does not exist at all, and refuses (with
    `SchemaVersionError`) a schema at another version: upgrades go through `taskyard migrate`.
    """

    shared_across_loops = False

    def __init__(self, url: str) -> None:
        self.url = url
        self.config = PostgresUrl.parse(url)
        self.schema = self.config.schema
        self.channel = f"taskyard_{self.schema}"
        self._enqueue_sql = EnqueueSql(self.schema, self.channel)
        self._pool: psycopg_pool.AsyncConnectionPool | None = None
        self._listener: Listener | None = None
        self._opening: asyncio.Lock | None = None
        self._enqueued_since_check = 0
        self._analyzing: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                await self._open()

    async def _open(self) -> None:
        pool = psycopg_pool.AsyncConnectionPool(
            self.config.conninfo,
            min_size=self.config.pool_min,
            max_size=self.config.pool_max,
            # Single statements are atomic; multi-statement operations open a transaction.
            kwargs={"autocommit": True},
            timeout=self.config.pool_timeout,
            open=False,
            name=f"taskyard-{self.schema}",
            configure=_configure_connection,
        )
        try:
            with converted_errors("open"):
                await pool.open(wait=self.config.pool_min > 0, timeout=self.config.pool_timeout)
                async with pool.connection() as conn:
                    version = await read_version(conn, self.schema)
                    if version is None:
                        # A fresh schema is created on the spot; an existing one is only
                        # upgraded by an explicit `taskyard migrate`.
                        await apply_migrations(conn, self.schema)
                    elif version != SCHEMA_VERSION:
                        raise SchemaVersionError(_version_message(self.schema, version))
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._listener = Listener(self.config.conninfo, self.channel)

    async def close(self) -> None:
        analyzing, self._analyzing = self._analyzing, None
        if analyzing is not None:
            analyzing.cancel()
            with contextlib.suppress(BaseException):
                await analyzing
        pool, self._pool = self._pool, None
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        if pool is not None:
            await pool.close()

    async def ping(self) -> None:
        async with self._conn("ping") as conn:
            await conn.execute("SELECT 1")

    async def store_time(self) -> datetime | None:
        async with self._conn("store_time") as conn:
            cur = await conn.execute("SELECT clock_timestamp()")
            row = await cur.fetchone()
        assert row is not None
        return row[0].astimezone(UTC)

    async def server_check(self) -> list[str]:
        async with self._conn("server_check") as conn:
            cur = await conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit')"
            )
            settings = dict(await cur.fetchall())
            before = time.time()
            cur = await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
            row = await cur.fetchone()
            after = time.time()
        warnings = [
            f"PostgreSQL has {name}={settings[name]}: a committed enqueue may be lost if the "
            "database server crashes"
            for name in ("fsync", "synchronous_commit")
            if settings.get(name) == "off"
        ]
        assert row is not None
        if (skew := clock_skew_warning("PostgreSQL", float(row[0]), before, after)) is not None:
            warnings.append(skew)
        return warnings

    async def schema_version(self) -> int:
        with converted_errors("schema_version"):
            async with await psycopg.AsyncConnection.connect(
                self.config.conninfo, autocommit=True
            ) as conn:
                return await read_version(conn, self.schema) or 0

    async def migrate(self) -> int:
        with converted_errors("migrate"):
            async with await psycopg.AsyncConnection.connect(
                self.config.conninfo, autocommit=True
            ) as conn:
                return await apply_migrations(conn, self.schema)

    @contextlib.asynccontextmanager
    async def _conn(self, what: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; connection failures become `BackendUnavailable`."""
        pool = self._pool
        if pool is None:
            # Opened on first use, like the memory backend that needs no open().
            await self.open()
            pool = self._pool
            assert pool is not None
        try:
            async with pool.connection() as conn:
                yield conn
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            # After a server restart every idle pooled connection is dead: drop them all now
            # rather than failing once per connection.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.check(), timeout=self.config.pool_timeout)
            raise BackendUnavailable(f"PostgreSQL unavailable during {what}: {exc}") from exc

    async def _fetch_jobs(self, what: str, query: str, params: Any = None) -> list[Job]:
        async with self._conn(what) as conn:
            cur = await conn.execute(query, params)
            rows = await cur.fetchall()
        return [job_from_row(r) for r in rows]

    def _waking(self, update: str) -> str:
        """`update` (an UPDATE ... RETURNING JOB_COLUMNS) that also NOTIFYs the queues of
        rows that became pending; each result row gets one extra column to ignore.
        """
        return (
            f"WITH u AS ({update}), wake AS (SELECT pg_notify('{self.channel}', x.queue) "
            "FROM (SELECT DISTINCT queue FROM u WHERE status = 'pending') x) "
            f"SELECT {JOB_COLUMNS}, (SELECT count(*) FROM wake) FROM u"
        )

    def _settling(self, update: str, now: str) -> str:
        """`_waking(update)` that also carries out the workflow rules (`graph.finishing`) for
        the workflow steps it finished, at `now` (SQL), in the same statement."""
        return (
            f"WITH u AS ({update}), wake AS (SELECT pg_notify('{self.channel}', x.queue) "
            "FROM (SELECT DISTINCT queue FROM u WHERE status = 'pending') x), "
            f"{finishing(self.schema, now)} "
            f"SELECT {JOB_COLUMNS}, (SELECT count(*) FROM wake) + (SELECT count(*) FROM g) FROM u"
        )

    async def _fetch_waking(self, what: str, update: str, params: Any) -> list[Job]:
        async with self._conn(what) as conn:
            cur = await conn.execute(self._waking(update), params)
            rows = await cur.fetchall()
        return [job_from_row(r[:-1]) for r in rows]

    # -- jobs: writes by clients -------------------------------------------------------------
    async def job_enqueue_many(
        self,
        *,
        drafts: Sequence[JobDraft],
        now: datetime | None = None,
        connection: Any = None,
    ) -> list[Job]:
        """Store new jobs (see the protocol). `connection`: the application's own psycopg
        connection (sync or async); the jobs are inserted in its current transaction and
        exist if and only if it commits.
        """
        if not drafts:
            return []
        sql = self._enqueue_sql
        if isinstance(connection, psycopg.Connection):
            # The sync facade calls from its own loop thread; the caller's thread waits anyway.
            with converted_errors("enqueue"):
                return enqueue_sync(connection, sql, drafts, now)
        if isinstance(connection, psycopg.AsyncConnection):
            with converted_errors("enqueue"):
                return await enqueue_async(connection, sql, drafts, now)
        if connection is not None:
            raise TypeError(
                "connection must be a psycopg Connection or AsyncConnection "
                f"(SQLAlchemy: session.connection().connection.driver_connection), not {type(connection).__name__}"
            )
        async with self._conn("enqueue") as conn:
            jobs = await enqueue_async(conn, sql, drafts, now)
        self._wake_local([j.queue for j in jobs if j.status is JobStatus.PENDING])
        self._enqueued_since_check += len(drafts)
        if self._enqueued_since_check >= ANALYZE_CHECK_EVERY and self._analyzing is None:
            self._enqueued_since_check = 0
            self._analyzing = asyncio.create_task(self._analyze_if_outgrown())
        return jobs

    def _wake_local(self, queues: Sequence[str]) -> None:
        """Wake this process's own waiters on `queues` at once (NOTIFY reaches the others)."""
        if self._listener is not None:
            for queue in set(queues):
                self._listener.wake(queue)

    async def _analyze_if_outgrown(self) -> None:
        """ANALYZE the jobs table when it has more new rows than it had at its last ANALYZE
        (never analyzed counts as none): autovacuum analyzes at 10 % of growth, so this only
        fires after bulk loads it has not caught up with yet, or where it is off. The planner
        then knows the backlog for every other query (counts, listings); claims do not need
        it (migration 8). One process at a time per schema (an advisory lock); in the
        background: the enqueue that crossed the check has already returned.
        """
        try:
            async with self._conn("analyze") as conn, conn.transaction():
                cur = await conn.execute(
                    "SELECT coalesce(s.n_mod_since_analyze, 0) > greatest(c.reltuples, %s) "
                    "AND pg_try_advisory_xact_lock(%s) FROM pg_class c "
                    "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = %s::regclass",
                    (ANALYZE_MIN_ROWS, _analyze_lock_key(self.schema), f"{self.schema}.jobs"),
                )
                row = await cur.fetchone()
                if row is not None and row[0]:
                    await conn.execute(f"ANALYZE {self.schema}.jobs")
                    log.info("analyzed %s.jobs after a large enqueue", self.schema)
        except Exception as exc:  # statistics are an optimisation: never fail an enqueue
            log.debug("ANALYZE of %s.jobs skipped: %s", self.schema, exc)
        finally:
            self._analyzing = None

    async def job_enqueue_in_transaction(
        self, *, connection: Any, drafts: Sequence[JobDraft], now: datetime | None = None
    ) -> list[Job]:
        """Store new jobs in the current transaction of the application's own psycopg
        connection (`TransactionalEnqueue`); see `job_enqueue_many`'s `connection`."""
        return await self.job_enqueue_many(drafts=drafts, now=now, connection=connection)

    async def job_get(self, *, job_id: str) -> Job | None:
        jobs = await self._fetch_jobs(
            "job_get", f"SELECT {JOB_COLUMNS} FROM {self.schema}.jobs WHERE id = %s", (job_id,)
        )
        return jobs[0] if jobs else None

    async def jobs_list(
        self, *, filter: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        conds = ["true"]
        params: dict[str, Any] = {"limit": limit + 1}
        for column, op, value in (
            ("queue", "=", filter.queue),
            ("status", "=", filter.status.value if filter.status else None),
            ("task", "=", filter.task),
            ("created_at", ">=", filter.created_after),
            ("created_at", "<", filter.created_before),
            ("id", "<", cursor),
            (f"{self.schema}.search_text(jobs)", "ILIKE", _like_pattern(filter.q)),
        ):
            if value is not None:
                name = f"p{len(params)}"
                conds.append(f"{column} {op} %({name})s")
                params[name] = value
        jobs = await self._fetch_jobs(
            "jobs_list",
            f"SELECT {JOB_COLUMNS} FROM {self.schema}.jobs WHERE {' AND '.join(conds)} "
            "ORDER BY id DESC LIMIT %(limit)s",
            params,
        )
        page = jobs[:limit]
        return JobPage(jobs=page, next_cursor=page[-1].id if len(jobs) > limit and page else None)

    # -- jobs: the worker's side -------------------------------------------------------------
    async def job_claim(
        self,
        *,
        queues: Sequence[str] | None,
        limit: int,
        worker_id: str,
        lease: float,
        now: datetime | None = None,
        tasks: Collection[str] | None = None,
    ) -> list[Job]:
        if limit <= 0 or (queues is not None and not queues) or (tasks is not None and not tasks):
            return []
        jobs = await self._fetch_jobs(
            "job_claim",
            f"SELECT {JOB_COLUMNS} FROM {self.schema}.claim(%s, %s, %s, %s, %s::timestamptz, %s)",
            (
                list(queues) if queues is not None else None, limit, worker_id, float(lease), now,
                sorted(set(tasks)) if tasks is not None else None,
            ),
        )
        jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return jobs

    async def jobs_extend_leases(
        self, *, leases: Mapping[str, str], lease: float, now: datetime | None = None
    ) -> LeaseReport:
        if not leases:
            return LeaseReport()
        async with self._conn("jobs_extend_leases") as conn:
            cur = await conn.execute(
                f"UPDATE {self.schema}.jobs j SET lease_expires_at = {NOW} + make_interval(secs => %(lease)s) "
                "FROM unnest(%(ids)s::text[], %(tokens)s::text[]) l(id, token) "
                "WHERE j.id = l.id AND j.status = 'running' AND j.lease_token = l.token "
                "RETURNING j.id, j.cancel_requested",
                {
                    "ids": list(leases),
                    "tokens": list(leases.values()),
                    "lease": float(lease),
                    "now": now,
                },
            )
            rows = await cur.fetchall()
        kept = {r[0] for r in rows}
        return LeaseReport(
            lost=frozenset(leases.keys() - kept),
            cancel_requested=frozenset(r[0] for r in rows if r[1]),
        )

    async def _owned_update(self, what: str, sets: str, params: dict[str, Any]) -> Job:
        """Apply `sets` to the job if `lease_token` still owns it; else `LeaseLost`."""
        jobs = await self._fetch_waking(
            what,
            f"UPDATE {self.schema}.jobs SET {sets} WHERE id = %(id)s AND status = 'running' "
            f"AND lease_token = %(token)s RETURNING {JOB_COLUMNS}",
            params,
        )
        if not jobs:
            raise LeaseLost.of_job(params["id"])
        return jobs[0]

    async def job_set_progress(
        self, *, job_id: str, lease_token: str, progress: Progress, now: datetime | None = None
    ) -> None:
        await self._owned_update(
            "job_set_progress",
            "progress = %(progress)s::jsonb",
            {"id": job_id, "token": lease_token, "progress": json.dumps(progress_json(progress))},
        )

    # -- wake-ups ----------------------------------------------------------------------------
    async def wait_for_jobs(self, *, queues: Sequence[str] | None, timeout: float) -> None:
        listener = self._listener
        if listener is None:
            await asyncio.sleep(min(timeout, 0.05))
            return
        await listener.wait(queues, timeout)


def _version_message(schema: str, version: int) -> str:
    if version < SCHEMA_VERSION:
        return (
            f"PostgreSQL schema {schema!r} is at version {version}; this taskyard needs version "
            f"{SCHEMA_VERSION}. Run `taskyard migrate` (with the same backend URL) to upgrade it."
        )
    return (
        f"PostgreSQL schema {schema!r} is at version {version}, newer than this taskyard "
        f"({SCHEMA_VERSION}); upgrade taskyard"
    )


def _analyze_lock_key(schema: str) -> int:
    return zlib.crc32(f"taskyard-analyze:{schema}".encode()) - (1 << 31)


async def _configure_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """Each pooled connection reads JSON with `decode_stored`: a row nested too deeply for
    Python's parser (written around the payload limit) reads as a marker, not an error."""
    set_json_loads(decode_stored, conn)


def _like_pattern(q: str | None) -> str | None:
    """`q` as an ILIKE pattern matching it anywhere, its wildcards taken literally."""
    if q is None:
        return None
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
