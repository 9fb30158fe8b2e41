"""The versioned MySQL/MariaDB schema: numbered migrations recorded in `taskyard_migrations`,
applied in order under a named lock (`GET_LOCK`), so concurrent `migrate` runs apply each once.

Every table is named `taskyard_*` in the URL's database, so that database may be the
application's own (transactional enqueue needs the jobs table beside the application's). Text
columns are `utf8mb4_bin`: names, ids and keys compare byte for byte, as on every other
backend. JSON lives in LONGTEXT columns as JSON text (MySQL's binary JSON type would reorder
an object's keys). DDL is not transactional in MySQL: each statement of a migration is
written so that running it again after a crash mid-migration does no harm.
"""

from __future__ import annotations

from typing import Any

from asyncmy.cursors import Cursor

from taskyard.errors import SchemaVersionError

__all__ = ("MIGRATIONS", "SCHEMA_VERSION", "Tables", "apply_migrations", "quoted", "read_version")

_TABLE = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

_V1: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_jobs (
        id VARCHAR(255) NOT NULL PRIMARY KEY,
        task VARCHAR(255) NOT NULL,
        queue VARCHAR(255) NOT NULL,
        payload LONGTEXT NOT NULL,
        status VARCHAR(16) NOT NULL,
        priority INT NOT NULL DEFAULT 0,
        run_at DATETIME(6) NOT NULL,
        attempt INT NOT NULL DEFAULT 0,
        max_attempts INT NOT NULL DEFAULT 1,
        created_at DATETIME(6) NOT NULL,
        started_at DATETIME(6) NULL,
        finished_at DATETIME(6) NULL,
        result LONGTEXT NULL,
        errors LONGTEXT NOT NULL,
        progress TEXT NULL,
        unique_key TEXT NULL,
        -- the key (a digest of a long one: rows.held_key) while the job holds it (scheduled,
        -- pending or running); NULLs do not collide in a UNIQUE index, so this is MySQL's
        -- partial unique index
        unique_active VARCHAR(700) NULL,
        tags TEXT NOT NULL,
        timeout DOUBLE NULL,
        worker_id VARCHAR(255) NULL,
        lease_token VARCHAR(64) NULL,
        lease_expires_at DATETIME(6) NULL,
        cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
        rescues INT NOT NULL DEFAULT 0,
        max_rescues INT NOT NULL DEFAULT 3,
        UNIQUE KEY jobs_unique_active (unique_active),
        -- claims read pending jobs in claim order, of every queue or of one
        KEY jobs_ready (status, priority DESC, run_at, id),
        KEY jobs_ready_queue (status, queue, priority DESC, run_at, id),
        -- due scheduled jobs, expired leases, finished jobs to prune
        KEY jobs_due (status, run_at),
        KEY jobs_lease (status, lease_expires_at),
        KEY jobs_finished (status, finished_at, id),
        KEY jobs_queue_status (queue, status, task)
    ) {_TABLE}""",
    f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_queues (
        name VARCHAR(255) NOT NULL PRIMARY KEY,
        paused BOOLEAN NOT NULL DEFAULT FALSE,
        concurrency INT NULL,
        rate_limit INT NULL,
        rate_period DOUBLE NULL,
        window_start DOUBLE NOT NULL DEFAULT 0,
        window_count INT NOT NULL DEFAULT 0
    ) {_TABLE}""",
    f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_stats (
        minute DATETIME(6) NOT NULL,
        queue VARCHAR(255) NOT NULL,
        task VARCHAR(255) NOT NULL DEFAULT '',
        completed BIGINT NOT NULL DEFAULT 0,
        failed BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (minute, queue, task)
    ) {_TABLE}""",
    f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_stats_latency (
        minute DATETIME(6) NOT NULL,
        queue VARCHAR(255) NOT NULL,
        task VARCHAR(255) NOT NULL DEFAULT '',
        cell SMALLINT NOT NULL,
        count BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (minute, queue, task, cell)
    ) {_TABLE}""",
    f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_stats_depth (
        minute DATETIME(6) NOT NULL,
        queue VARCHAR(255) NOT NULL,
        depth BIGINT NOT NULL,
        PRIMARY KEY (minute, queue)
    ) {_TABLE}""",
    f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_schedules (
        name VARCHAR(255) NOT NULL PRIMARY KEY,
        owner VARCHAR(255) NULL,
        enabled BOOLEAN NOT NULL,
        next_fire_at DATETIME(6) NULL,
        last_fire_at DATETIME(6) NULL,
        data LONGTEXT NOT NULL,
        KEY schedules_owner (owner),
        KEY schedules_due (enabled, next_fire_at)
    ) {_TABLE}""",
    f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_leaders (
        name VARCHAR(255) NOT NULL PRIMARY KEY,
        holder VARCHAR(255) NOT NULL,
        elected_at DATETIME(6) NOT NULL,
        expires_at DATETIME(6) NOT NULL
    ) {_TABLE}""",
    f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_workers (
        id VARCHAR(255) NOT NULL PRIMARY KEY,
        host VARCHAR(255) NOT NULL,
        pid INT NOT NULL,
        queues TEXT NOT NULL,
        concurrency INT NOT NULL,
        started_at DATETIME(6) NOT NULL,
        last_heartbeat DATETIME(6) NOT NULL,
        current_jobs LONGTEXT NOT NULL,
        tasks LONGTEXT NOT NULL,
        lost_threads INT NOT NULL DEFAULT 0
    ) {_TABLE}""",
)

#: 2: workflows (`core.workflow`): a job's workflow, step name and metadata; workflow headers;
#: edges between steps with their policy and state. The ALTER is one statement (atomic).
_V2: tuple[str, ...] = (
    """ALTER TABLE {d}.taskyard_jobs
        ADD COLUMN workflow_id VARCHAR(255) NULL,
        ADD COLUMN step VARCHAR(255) NULL,
        ADD COLUMN meta TEXT NULL,
        ADD KEY jobs_workflow (workflow_id, id)""",
    f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_workflows (
        id VARCHAR(255) NOT NULL PRIMARY KEY,
        name VARCHAR(255) NOT NULL,
        created_at DATETIME(6) NOT NULL,
        cancelled_at DATETIME(6) NULL
    ) {_TABLE}""",
    f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_workflow_edges (
        parent VARCHAR(255) NOT NULL,
        child VARCHAR(255) NOT NULL,
        workflow_id VARCHAR(255) NOT NULL,
        policy VARCHAR(16) NOT NULL,
        state VARCHAR(16) NOT NULL,
        PRIMARY KEY (parent, child),
        KEY workflow_edges_child (child, state),
        KEY workflow_edges_workflow (workflow_id)
    ) {_TABLE}""",
)

#: Migration n (1-based) brings the schema from version n-1 to n. Never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)

_MIGRATIONS_TABLE = f"""CREATE TABLE IF NOT EXISTS {{d}}.taskyard_migrations (
    version INT NOT NULL PRIMARY KEY,
    applied_at DATETIME(6) NOT NULL
) {_TABLE}"""


class Tables:
    """The qualified names of taskyard's tables in one database (statements name the database,
    so they also run on an application's connection whose default database is another)."""

    def __init__(self, database: str) -> None:
        d = quoted(database)
        self.database = database
        self.jobs = f"{d}.taskyard_jobs"
        self.queues = f"{d}.taskyard_queues"
        self.stats = f"{d}.taskyard_stats"
        self.stats_latency = f"{d}.taskyard_stats_latency"
        self.stats_depth = f"{d}.taskyard_stats_depth"
        self.schedules = f"{d}.taskyard_schedules"
        self.leaders = f"{d}.taskyard_leaders"
        self.workers = f"{d}.taskyard_workers"
        self.workflows = f"{d}.taskyard_workflows"
        self.edges = f"{d}.taskyard_workflow_edges"


def quoted(database: str) -> str:
    """The database name as an identifier (the URL parser allows no backquote in it)."""
    return f"`{database}`"


async def read_version(cur: Cursor, database: str) -> int | None:
    """The schema's version, or None when taskyard's tables do not exist there yet."""
    await cur.execute(
        "SELECT COUNT(*) FROM information_schema.tables "
        "WHERE table_schema = %s AND table_name = 'taskyard_migrations'",
        (database,),
    )
    row: Any = await cur.fetchone()
    if not row or not row[0]:
        return None
    await cur.execute(f"SELECT COALESCE(MAX(version), 0) FROM {quoted(database)}.taskyard_migrations")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def apply_migrations(cur: Cursor, database: str) -> int:
    """Apply every missing migration in order; returns the version now in place. `cur` is on
    an autocommit connection (MySQL commits DDL implicitly anyway)."""
    lock = f"taskyard-migrate:{database}"
    await cur.execute("SELECT GET_LOCK(%s, 60)", (lock,))
    row: Any = await cur.fetchone()
    if not row or row[0] != 1:
        raise SchemaVersionError(f"could not take the migration lock {lock!r} within 60 s")
    try:
        d = quoted(database)
        version = await read_version(cur, database)
        if version is None:
            await cur.execute(_MIGRATIONS_TABLE.replace("{d}", d))
            version = 0
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"MySQL database {database!r} has taskyard schema version {version}, newer than "
                f"this taskyard ({SCHEMA_VERSION}); upgrade taskyard"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                await cur.execute(statement.replace("{d}", d))
            await cur.execute(
                f"INSERT INTO {d}.taskyard_migrations (version, applied_at) "
                "VALUES (%s, UTC_TIMESTAMP(6))",
                (number,),
            )
    finally:
        await cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
        await cur.fetchall()
    return SCHEMA_VERSION
