"""`MysqlBackend`: jobs in MySQL 8.0+ or MariaDB 10.6+ through asyncmy's asyncio pool.

Every operation is one InnoDB transaction at READ COMMITTED: rows to change are read with a
locking read, the decision is made by `core` (as on SQLite), and the new state is written
back in the same transaction. Claims and rescues use `FOR UPDATE SKIP LOCKED`. Times are the
caller's `now` or, when None, the server's `UTC_TIMESTAMP(6)`, stored as UTC `DATETIME(6)`.
MySQL has no LISTEN/NOTIFY: wake-ups poll with a short backoff (`wait_for_jobs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncmy
from asyncmy.cursors import Cursor

from taskyard.backends.skew import clock_skew_warning
from taskyard.core.job import (
    Job,
    JobDraft,
    JobFilter,
    JobPage,
    JobStatus,
    LeaseReport,
    Progress,
    RescueReport,
    check_prunable,
)
from taskyard.core.settle import Settle, Settled, SettleKind
from taskyard.errors import BackendError, ConfigError, LeaseLost, SchemaVersionError

from . import claims, graph, jobs
from .cluster import ClusterOps
from .connection import (
    MysqlUrl,
    Pool,
    converted_errors,
    is_duplicate_key,
    is_unknown_database,
)
from .rows import db_time, dumps
from .schema import SCHEMA_VERSION, Tables, apply_migrations, quoted, read_version
from .settle import settle_group
from .wakeups import PollingWakeups
from .workflows import WorkflowOps

__all__ = ("MysqlBackend",)

T = TypeVar("T")

#: A draft whose unique key a concurrent enqueue took is looked up again this many times.
_ENQUEUE_TRIES = 5


class MysqlBackend(PollingWakeups, ClusterOps, WorkflowOps):
    """MySQL/MariaDB backend (`mysql://user[:password]@host[:port]/database`); see
    `docs/mysql.md`.

    `open()` creates the database when it is missing (given the privilege) and the schema when
    it has none; a schema at another version is refused (`SchemaVersionError`): upgrades go
    through `taskyard migrate`.
    """

    shared_across_loops = False  # asyncmy connections belong to the loop that opened them

    def __init__(self, url: str) -> None:
        self.url = url
        self.config = MysqlUrl.parse(url)
        self.tables = Tables(self.config.database)
        self._pool = Pool(self.config)
        self._opening: asyncio.Lock | None = None
        self._start_polling()

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool.is_open:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if not self._pool.is_open:
                await self._open()

    async def _open(self) -> None:
        with converted_errors("open"):
            try:
                await self._pool.open()
            except Exception as exc:
                if not is_unknown_database(exc):
                    raise
                await self._create_database()
                await self._pool.open()
        try:
            async with self._pool.connection("open") as conn, conn.cursor() as cur:
                await _check_server(cur)
                version = await read_version(cur, self.config.database)
                if version is None:
                    # A fresh database gets the schema on the spot; an existing one is only
                    # upgraded by an explicit `taskyard migrate`.
                    await apply_migrations(cur, self.config.database)
                elif version != SCHEMA_VERSION:
                    raise SchemaVersionError(_version_message(self.config.database, version))
        except BaseException:
            await self._pool.close()
            raise

    async def _create_database(self) -> None:
        database = self.config.database
        async with self._connect(database=False) as conn, conn.cursor() as cur:
            try:
                await cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS {quoted(database)} "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
            except asyncmy.errors.OperationalError as exc:
                raise ConfigError(
                    f"MySQL database {database!r} does not exist and user {self.config.user!r} "
                    f"may not create it ({exc.args[-1]}); create it first: "
                    f"CREATE DATABASE {database} CHARACTER SET utf8mb4"
                ) from exc

    @contextlib.asynccontextmanager
    async def _connect(self, *, database: bool = True) -> Any:
        """A connection of its own (outside the pool), closed after the block."""
        with converted_errors("connect"):
            conn = await asyncmy.connect(**self.config.connect_kwargs(database=database))
        try:
            yield conn
        finally:
            conn.close()

    async def close(self) -> None:
        await self._pool.close()
        self._notify()

    async def ping(self) -> None:
        await self._run("ping", lambda cur: cur.execute("SELECT 1"))

    async def store_time(self) -> datetime | None:
        return await self._run("store_time", jobs.server_now)

    async def server_check(self) -> list[str]:
        async def read(cur: Cursor) -> tuple[dict[str, str], float, float, float]:
            await cur.execute(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                "('innodb_flush_log_at_trx_commit', 'sync_binlog', 'log_bin')"
            )
            settings = {str(k): str(v) for k, v in await cur.fetchall()}
            before = time.time()
            await cur.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
            row: Any = await cur.fetchone()
            return settings, before, float(row[0]), time.time()

        settings, before, server, after = await self._run("server_check", read)
        warnings = []
        if settings.get("innodb_flush_log_at_trx_commit", "1") != "1":
            warnings.append(
                "MySQL has innodb_flush_log_at_trx_commit="
                f"{settings['innodb_flush_log_at_trx_commit']}: a committed enqueue may be lost "
                "if the database server crashes (1 makes every commit durable)"
            )
        if (skew := clock_skew_warning("MySQL", server, before, after)) is not None:
            warnings.append(skew)
        return warnings

    async def schema_version(self) -> int:
        async with self._connect(database=False) as conn, conn.cursor() as cur:
            with converted_errors("schema_version"):
                return await read_version(cur, self.config.database) or 0

    async def migrate(self) -> int:
        try:
            return await self._migrate()
        except Exception as exc:
            if not is_unknown_database(exc):
                raise
        await self._create_database()
        return await self._migrate()

    async def _migrate(self) -> int:
        async with self._connect() as conn, conn.cursor() as cur:
            with converted_errors("migrate"):
                return await apply_migrations(cur, self.config.database)

    async def _run(self, what: str, fn: Callable[[Cursor], Awaitable[T]]) -> T:
        """`fn(cursor)` in one transaction (opening the backend on first use)."""
        if not self._pool.is_open:
            await self.open()
        return await self._pool.run(what, fn)

    # -- jobs: writes by clients -------------------------------------------------------------
    async def job_enqueue_many(
        self, *, drafts: Sequence[JobDraft], now: datetime | None = None
    ) -> list[Job]:
        if not drafts:
            return []
        t = self.tables
        for attempt in range(_ENQUEUE_TRIES):
            try:
                out, woken = await self._run("enqueue", functools.partial(
                    jobs.enqueue, t=t, drafts=drafts, now=now, locking=attempt > 0
                ))
            except Exception as exc:
                # A concurrent enqueue took an id or unique key first: look again.
                if is_duplicate_key(exc) and attempt + 1 < _ENQUEUE_TRIES:
                    continue
                raise
            self._wake(woken)
            return out
        raise BackendError("enqueue could not settle the unique keys of its drafts; try again")

    async def job_enqueue_in_transaction(
        self, *, connection: Any, drafts: Sequence[JobDraft], now: datetime | None = None
    ) -> list[Job]:
        """Store new jobs in the current transaction of the application's own asyncmy
        connection (`TransactionalEnqueue`): they exist if and only if it commits, and
        workers (which poll) see them only then."""
        if not isinstance(connection, asyncmy.Connection):
            raise TypeError(
                f"connection must be an asyncmy Connection, not {type(connection).__name__}"
            )
        if not drafts:
            return []
        t = self.tables
        for attempt in range(_ENQUEUE_TRIES):
            try:
                with converted_errors("enqueue"):
                    async with connection.cursor() as cur:
                        out, _ = await jobs.enqueue(cur, t, drafts, now, locking=attempt > 0)
                return out
            except Exception as exc:
                # InnoDB rolls back only the refused statement, not the caller's transaction.
                if is_duplicate_key(exc) and attempt + 1 < _ENQUEUE_TRIES:
                    continue
                raise
        raise BackendError("enqueue could not settle the unique keys of its drafts; try again")

    async def job_get(self, *, job_id: str) -> Job | None:
        return await self._run("job_get", lambda cur: jobs.get(cur, self.tables, job_id))

    async def jobs_list(
        self, *, filter: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        return await self._run(
            "jobs_list", lambda cur: jobs.list_page(cur, self.tables, filter, limit, cursor)
        )

    async def jobs_delete(self, *, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        return await self._run("jobs_delete", lambda cur: jobs.delete(cur, self.tables, ids))

    async def job_cancel(self, *, job_id: str, now: datetime | None = None) -> Job:
        job, woken = await self._run("job_cancel", lambda cur: graph.cancel(cur, self.tables, job_id, now))
        self._wake(woken)
        return job

    async def job_retry(self, *, job_id: str, now: datetime | None = None) -> Job:
        job = await self._retrying(
            "job_retry", lambda cur: graph.retry(cur, self.tables, job_id, now)
        )
        self._wake({job.queue})
        return job

    async def jobs_retry_failed(
        self, *, queue: str | None = None, now: datetime | None = None
    ) -> int:
        retried = await self._retrying(
            "jobs_retry_failed", lambda cur: graph.retry_failed(cur, self.tables, queue, now)
        )
        self._wake({j.queue for j in retried})
        return len(retried)

    async def _retrying(self, what: str, fn: Callable[[Cursor], Awaitable[T]]) -> T:
        """`_run`, again when a concurrent enqueue or retry took a unique key meanwhile."""
        for attempt in range(3):
            try:
                return await self._run(what, fn)
            except Exception as exc:
                if not is_duplicate_key(exc) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

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
        wanted = None if queues is None else list(dict.fromkeys(queues))
        return await self._run(
            "job_claim",
            lambda cur: claims.claim(
                cur, self.tables, wanted, limit, worker_id, float(lease), now, tasks
            ),
        )

    async def jobs_extend_leases(
        self, *, leases: Mapping[str, str], lease: float, now: datetime | None = None
    ) -> LeaseReport:
        if not leases:
            return LeaseReport()
        t = self.tables

        async def extend(cur: Cursor) -> LeaseReport:
            at = await jobs.server_now(cur, now)
            ids = list(leases)
            await cur.execute(
                f"SELECT id, lease_token, cancel_requested FROM {t.jobs} "
                f"WHERE id IN ({jobs.marks(len(ids))}) AND status = 'running' FOR UPDATE",
                ids,
            )
            rows = [r for r in await cur.fetchall() if leases.get(r[0]) == r[1]]
            kept = [r[0] for r in rows]
            if kept:
                await cur.execute(
                    f"UPDATE {t.jobs} SET lease_expires_at = %s "
                    f"WHERE id IN ({jobs.marks(len(kept))})",
                    (db_time(at + timedelta(seconds=float(lease))), *kept),
                )
            return LeaseReport(
                lost=frozenset(leases.keys() - set(kept)),
                cancel_requested=frozenset(r[0] for r in rows if r[2]),
            )

        return await self._run("jobs_extend_leases", extend)

    async def job_set_progress(
        self, *, job_id: str, lease_token: str, progress: Progress, now: datetime | None = None
    ) -> None:
        changed = await self._run(
            "job_set_progress",
            lambda cur: cur.execute(
                f"UPDATE {self.tables.jobs} SET progress = %s "
                "WHERE id = %s AND status = 'running' AND lease_token = %s",
                (dumps(progress.to_json()), job_id, lease_token),
            ),
        )
        if not changed:
            raise LeaseLost.of_job(job_id)

    async def jobs_settle(
        self, *, outcomes: Sequence[Settle], now: datetime | None = None
    ) -> list[Settled]:
        groups: dict[SettleKind, list[int]] = {}
        for index, outcome in enumerate(outcomes):
            groups.setdefault(outcome.kind, []).append(index)
        answers: list[Settled | None] = [None] * len(outcomes)
        woken: set[str] = set()
        for indexes in groups.values():
            group = [outcomes[i] for i in indexes]
            settled, queues = await self._run("jobs_settle", functools.partial(
                settle_group, t=self.tables, outcomes=group, now=now
            ))
            for position, answer in settled.items():
                answers[indexes[position]] = answer
            woken |= queues
        self._wake(woken)
        return [a for a in answers if a is not None]

    # -- jobs: maintenance -------------------------------------------------------------------
    async def jobs_rescue_expired(self, *, now: datetime | None = None) -> RescueReport:
        report, woken = await self._run(
            "jobs_rescue_expired", lambda cur: graph.rescue_expired(cur, self.tables, now)
        )
        self._wake(woken)
        return report

    async def jobs_promote_due(self, *, now: datetime | None = None) -> int:
        moved = await self._run(
            "jobs_promote_due", lambda cur: jobs.promote_due(cur, self.tables, now)
        )
        if moved:
            self._notify()
        return moved

    async def jobs_prune(
        self,
        *,
        status: JobStatus,
        keep_last: int | None = None,
        older_than: datetime | None = None,
        queue: str | None = None,
        exclude_queues: Collection[str] = (),
    ) -> int:
        status = JobStatus(status)
        check_prunable(status)
        if keep_last is None and older_than is None:
            return 0
        excluded = tuple(exclude_queues)
        return await self._run(
            "jobs_prune",
            lambda cur: jobs.prune(cur, self.tables, status, keep_last, older_than, queue, excluded),
        )


async def _check_server(cur: Cursor) -> None:
    """Refuse a server without `SKIP LOCKED` (MySQL before 8.0, MariaDB before 10.6)."""
    await cur.execute("SELECT VERSION()")
    row: Any = await cur.fetchone()
    version = str(row[0])
    numbers = tuple(int(p) for p in version.split("-")[0].split(".")[:2] if p.isdigit())
    needed = (10, 6) if "mariadb" in version.lower() else (8, 0)
    if numbers < needed:
        name = "MariaDB" if needed == (10, 6) else "MySQL"
        raise ConfigError(
            f"{name} {version} has no SELECT ... FOR UPDATE SKIP LOCKED; taskyard needs "
            "MySQL 8.0+ or MariaDB 10.6+"
        )


def _version_message(database: str, version: int) -> str:
    if version < SCHEMA_VERSION:
        return (
            f"MySQL database {database!r} has taskyard schema version {version}; this taskyard "
            f"needs version {SCHEMA_VERSION}. Run `taskyard migrate` (with the same backend URL) "
            "to upgrade it."
        )
    return (
        f"MySQL database {database!r} has taskyard schema version {version}, newer than this "
        f"taskyard ({SCHEMA_VERSION}); upgrade taskyard"
    )
