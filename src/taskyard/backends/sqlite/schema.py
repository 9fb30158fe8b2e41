"""The SQLite schema as ordered migrations, and the function that applies them.

Migration N (1-based) brings the file from version N-1 to N; `taskyard_schema` holds the
version. Never edit a released migration: append a new one.
"""

from __future__ import annotations

import sqlite3

from taskyard.errors import SchemaVersionError

__all__ = ("MIGRATIONS", "SCHEMA_VERSION", "SEARCHED_COLUMNS", "apply_migrations", "schema_version")

_ACTIVE = "('scheduled', 'pending', 'running')"
#: The columns `JobFilter.q` searches (the full-text index `jobs_search` holds them).
SEARCHED_COLUMNS = ("id", "task", "queue", "unique_key", "payload", "errors")
_SEARCHED = ", ".join(SEARCHED_COLUMNS)
_new = ", ".join(f"new.{c}" for c in _SEARCHED.split(", "))
_old = ", ".join(f"old.{c}" for c in _SEARCHED.split(", "))
_changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in _SEARCHED.split(", "))
#: The row (`old` or `new`) is in the index: at or below the catch-up's mark.
_INDEXED = "{}.rowid <= (SELECT indexed FROM jobs_search_state)"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: jobs, queues, stats, schedules, leaders, workers.
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            task TEXT NOT NULL,
            queue TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL,
            priority INTEGER NOT NULL,
            run_at INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            max_attempts INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            started_at INTEGER,
            finished_at INTEGER,
            result TEXT,
            errors TEXT,
            progress TEXT,
            unique_key TEXT,
            tags TEXT,
            timeout REAL,
            worker_id TEXT,
            lease_token TEXT,
            lease_expires_at INTEGER,
            cancel_requested INTEGER NOT NULL DEFAULT 0
        )""",
        # Claims read these in claim order and stop at their limit: every queue, or one.
        "CREATE INDEX jobs_pending ON jobs (priority DESC, run_at, id) WHERE status = 'pending'",
        "CREATE INDEX jobs_pending_queue ON jobs (queue, priority DESC, run_at, id) "
        "WHERE status = 'pending'",
        "CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE status = 'scheduled'",
        "CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'running'",
        "CREATE INDEX jobs_finished ON jobs (status, finished_at, id) WHERE finished_at IS NOT NULL",
        # Counts per queue/status and running jobs per queue (concurrency limits).
        "CREATE INDEX jobs_queue_status ON jobs (queue, status)",
        "CREATE INDEX jobs_created ON jobs (created_at)",
        f"CREATE UNIQUE INDEX jobs_unique_active ON jobs (unique_key) "
        f"WHERE unique_key IS NOT NULL AND status IN {_ACTIVE}",
        """CREATE TABLE queues (
            name TEXT PRIMARY KEY,
            paused INTEGER NOT NULL DEFAULT 0,
            concurrency INTEGER,
            rate_limit INTEGER,
            rate_period REAL,
            window_start REAL NOT NULL DEFAULT 0,
            window_count INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE stats (
            minute INTEGER NOT NULL,
            queue TEXT NOT NULL,
            completed INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            PRIMARY KEY (minute, queue)
        ) WITHOUT ROWID""",
        """CREATE TABLE schedules (
            name TEXT PRIMARY KEY,
            owner TEXT,
            enabled INTEGER NOT NULL,
            next_fire_at INTEGER,
            last_fire_at INTEGER,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX schedules_owner ON schedules (owner)",
        "CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE enabled",
        """CREATE TABLE leaders (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            elected_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        )""",
        """CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            last_heartbeat INTEGER NOT NULL,
            data TEXT NOT NULL
        )""",
    ),
    # 2: rescues counted apart from attempts (a lost worker does not use the retry budget);
    # the length of the current lease, so a rescuer can tell a dead worker's lease without
    # trusting its own wall clock (see jobs.rescue_unrenewed).
    (
        "ALTER TABLE jobs ADD COLUMN rescues INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN max_rescues INTEGER NOT NULL DEFAULT 3",
        "ALTER TABLE jobs ADD COLUMN lease_seconds REAL",
    ),
    # 3: statistics per task (the key gains `task`, "" for older rows), latency histograms
    # one row per cell, and sampled queue depths.
    (
        """CREATE TABLE stats_v3 (
            minute INTEGER NOT NULL,
            queue TEXT NOT NULL,
            task TEXT NOT NULL DEFAULT '',
            completed INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            PRIMARY KEY (minute, queue, task)
        ) WITHOUT ROWID""",
        "INSERT INTO stats_v3 (minute, queue, task, completed, failed) SELECT minute, queue, '', completed, failed FROM stats",
        "DROP TABLE stats",
        "ALTER TABLE stats_v3 RENAME TO stats",
        """CREATE TABLE stats_latency (
            minute INTEGER NOT NULL,
            queue TEXT NOT NULL,
            task TEXT NOT NULL,
            cell INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (minute, queue, task, cell)
        ) WITHOUT ROWID""",
        """CREATE TABLE stats_depth (
            minute INTEGER NOT NULL,
            queue TEXT NOT NULL,
            depth INTEGER NOT NULL,
            PRIMARY KEY (minute, queue)
        ) WITHOUT ROWID""",
    ),
    # 4: search (`JobFilter.q`): a trigram full-text index over the searched columns, filled
    # lazily (enqueue writes no index): `jobs_search_state.indexed` is the highest jobs rowid
    # indexed, and `search.catch_up` indexes the rows above it in batches, before every
    # search and from maintenance (`jobs_promote_due`). Rows at or below it are kept by the
    # triggers: a change of a searched column re-indexes the row (only errors change after
    # an insert today), a delete removes it; rows above it are left to the catch-up, which
    # reads their content then (an external-content FTS5 table must never be told to delete
    # a row it does not hold). A delete also lowers the mark to the highest rowid left, since
    # SQLite gives a new row max(rowid) + 1: a new row is always above the mark. Keyed by the
    # jobs table's rowid (no INTEGER PRIMARY KEY), which only VACUUM may renumber: after a
    # VACUUM, `search.reset` (docs/sqlite.md).
    (
        f"CREATE VIRTUAL TABLE jobs_search USING fts5({_SEARCHED}, content='jobs', "
        "tokenize='trigram')",
        "CREATE TABLE jobs_search_state (indexed INTEGER NOT NULL)",
        "INSERT INTO jobs_search_state (indexed) VALUES (0)",
        f"CREATE TRIGGER jobs_search_delete AFTER DELETE ON jobs BEGIN "
        f"INSERT INTO jobs_search (jobs_search, rowid, {_SEARCHED}) "
        f"SELECT 'delete', old.rowid, {_old} WHERE {_INDEXED.format('old')}; "
        f"UPDATE jobs_search_state SET indexed = (SELECT coalesce(max(rowid), 0) FROM jobs) "
        f"WHERE indexed > (SELECT coalesce(max(rowid), 0) FROM jobs); END",
        f"CREATE TRIGGER jobs_search_update AFTER UPDATE OF {_SEARCHED} ON jobs "
        f"WHEN ({_changed}) AND {_INDEXED.format('old')} BEGIN "
        f"INSERT INTO jobs_search (jobs_search, rowid, {_SEARCHED}) "
        f"VALUES ('delete', old.rowid, {_old}); "
        f"INSERT INTO jobs_search (rowid, {_SEARCHED}) VALUES (new.rowid, {_new}); END",
    ),
    # 5: workflows (`core.workflow`): a job's workflow, step name and metadata; workflow
    # headers; edges between steps with their policy and state (a parent finds its children
    # by the primary key; a workflow's steps, in step order, and edges by workflow_id).
    (
        "ALTER TABLE jobs ADD COLUMN workflow_id TEXT",
        "ALTER TABLE jobs ADD COLUMN step TEXT",
        "ALTER TABLE jobs ADD COLUMN meta TEXT",
        # A step's position in its workflow's draft: ids made in one millisecond do not sort
        # in the order they were made, so step order is stored, not derived from ids.
        "ALTER TABLE jobs ADD COLUMN step_index INTEGER",
        "CREATE INDEX jobs_workflow ON jobs (workflow_id, step_index) WHERE workflow_id IS NOT NULL",
        """CREATE TABLE workflows (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            cancelled_at INTEGER
        )""",
        """CREATE TABLE workflow_edges (
            parent TEXT NOT NULL,
            child TEXT NOT NULL,
            workflow_id TEXT NOT NULL,
            policy TEXT NOT NULL,
            state TEXT NOT NULL,
            position INTEGER NOT NULL,
            PRIMARY KEY (parent, child)
        ) WITHOUT ROWID""",
        # A child asks "any edge still open / failed?" with one probe of this index.
        "CREATE INDEX workflow_edges_child ON workflow_edges (child, state)",
        "CREATE INDEX workflow_edges_workflow ON workflow_edges (workflow_id, position)",
    ),
    # 6: listings newest first by status and/or queue read an index in id order and stop at
    # the page's end, instead of sorting every match (650 ms for one queue's pending jobs at
    # 1M). (queue, status, id) also covers what (queue, status) served: counts per queue and
    # status, and a queue's running jobs (concurrency limits).
    (
        "CREATE INDEX jobs_status_id ON jobs (status, id)",
        "CREATE INDEX jobs_queue_id ON jobs (queue, id)",
        "CREATE INDEX jobs_queue_status_id ON jobs (queue, status, id)",
        "DROP INDEX jobs_queue_status",
    ),
)

#: The version this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The version of the open file (0 for a new file)."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'taskyard_schema'"
    ).fetchone()
    if not found:
        return 0
    row = conn.execute("SELECT version FROM taskyard_schema").fetchone()
    return int(row[0]) if row else 0


def apply_migrations(conn: sqlite3.Connection, *, path: str) -> int:
    """Apply the missing migrations in one write transaction; returns the version in place.

    Raises `SchemaVersionError` when the file was written by a newer taskyard.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"SQLite file {path!r} has schema version {version}, newer than the {SCHEMA_VERSION} "
                "this taskyard understands; upgrade taskyard to use it"
            )
        if version == 0:
            conn.execute("CREATE TABLE taskyard_schema (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO taskyard_schema (version) VALUES (0)")
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        if version != SCHEMA_VERSION:
            conn.execute("UPDATE taskyard_schema SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION
