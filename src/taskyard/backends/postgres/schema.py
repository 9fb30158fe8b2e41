"""The versioned PostgreSQL schema: numbered migrations, applied in order under an advisory lock.

Every object lives in one schema (`{s}`, from the URL's `schema` parameter), so several
taskyard deployments (or tests) can share a database.
"""

from __future__ import annotations

import zlib

import psycopg

from taskyard.backends.postgres.graph import MIGRATION as WORKFLOWS_MIGRATION
from taskyard.errors import SchemaVersionError

__all__ = ("MIGRATIONS", "SCHEMA_VERSION", "apply_migrations", "read_version")

_V1 = """
CREATE SCHEMA IF NOT EXISTS {s};

CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL);

CREATE TABLE {s}.jobs (
    id text PRIMARY KEY,
    task text NOT NULL,
    queue text NOT NULL,
    payload jsonb,
    status text NOT NULL CHECK (status IN
        ('scheduled', 'pending', 'running', 'completed', 'failed', 'cancelled')),
    priority integer NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    result jsonb,
    errors jsonb NOT NULL DEFAULT '[]',
    progress jsonb,
    unique_key text,
    -- equals unique_key while this job holds the key (scheduled, pending or running); a
    -- manually retried job whose key is taken meanwhile keeps unique_key but holds nothing
    unique_active text,
    tags jsonb NOT NULL DEFAULT '[]',
    timeout double precision,
    worker_id text,
    lease_token text,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false
);
-- Partial indexes: a row only costs index maintenance in the indexes whose predicate it meets.
CREATE UNIQUE INDEX jobs_unique_active ON {s}.jobs (unique_active) WHERE unique_active IS NOT NULL;
CREATE INDEX jobs_ready ON {s}.jobs (priority DESC, run_at, id)
    WHERE status IN ('pending', 'scheduled');
CREATE INDEX jobs_ready_queue ON {s}.jobs (queue, priority DESC, run_at, id)
    WHERE status IN ('pending', 'scheduled');
CREATE INDEX jobs_scheduled ON {s}.jobs (run_at) WHERE status = 'scheduled';
CREATE INDEX jobs_running ON {s}.jobs (queue, lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_finished ON {s}.jobs (status, finished_at DESC NULLS LAST, id DESC)
    WHERE status IN ('completed', 'failed', 'cancelled');

CREATE TABLE {s}.queues (
    name text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false,
    concurrency integer,
    rate_limit integer,
    rate_period double precision,
    window_start double precision NOT NULL DEFAULT 0,
    window_count integer NOT NULL DEFAULT 0
);

CREATE TABLE {s}.stats (
    minute timestamptz NOT NULL,
    queue text NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, queue)
);

CREATE TABLE {s}.schedules (
    name text PRIMARY KEY,
    owner text,
    enabled boolean NOT NULL,
    next_fire_at timestamptz,
    last_fire_at timestamptz,
    data jsonb NOT NULL
);
CREATE INDEX schedules_owner ON {s}.schedules (owner) WHERE owner IS NOT NULL;
CREATE INDEX schedules_due ON {s}.schedules (next_fire_at) WHERE enabled;

CREATE TABLE {s}.leaders (
    name text PRIMARY KEY,
    holder text NOT NULL,
    elected_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE {s}.workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    queues jsonb NOT NULL,
    concurrency integer NOT NULL,
    started_at timestamptz NOT NULL,
    last_heartbeat timestamptz NOT NULL,
    current_jobs jsonb NOT NULL DEFAULT '[]'
);

-- Claim in one round-trip. Queues without limits take the fast path (one SKIP LOCKED select);
-- queues with a concurrency or rate limit are locked one by one (in name order, so claimers
-- never deadlock) to read their budget, then candidates of both kinds are merged by priority.
CREATE FUNCTION {s}.claim(p_queues text[], p_limit integer, p_worker text,
                          p_lease double precision, p_now timestamptz)
RETURNS SETOF {s}.jobs LANGUAGE plpgsql AS $fn$
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_expires timestamptz := v_now + make_interval(secs => p_lease);
    v_skip text[];
    v_ids text[];
    v_budget bigint;
    v_window double precision;
    v_limited boolean := false;
    q record;
BEGIN
    SELECT coalesce(array_agg(name), '{}') INTO v_skip FROM {s}.queues
     WHERE paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL;

    IF p_queues IS NULL THEN
        SELECT coalesce(array_agg(c.id), '{}') INTO v_ids FROM (
            SELECT j.id FROM {s}.jobs j
             WHERE j.status IN ('pending', 'scheduled') AND (j.status = 'pending' OR j.run_at <= v_now)
               AND NOT (j.queue = ANY (v_skip))
             ORDER BY j.priority DESC, j.run_at, j.id
             LIMIT p_limit FOR UPDATE SKIP LOCKED) c;
    ELSE
        SELECT coalesce(array_agg(c.id), '{}') INTO v_ids FROM (
            SELECT j.id FROM {s}.jobs j
             WHERE j.status IN ('pending', 'scheduled') AND (j.status = 'pending' OR j.run_at <= v_now)
               AND j.queue = ANY (p_queues) AND NOT (j.queue = ANY (v_skip))
             ORDER BY j.priority DESC, j.run_at, j.id
             LIMIT p_limit FOR UPDATE SKIP LOCKED) c;
    END IF;

    FOR q IN SELECT * FROM {s}.queues
              WHERE NOT paused AND (concurrency IS NOT NULL OR rate_limit IS NOT NULL)
                AND (p_queues IS NULL OR name = ANY (p_queues))
              ORDER BY name FOR UPDATE
    LOOP
        v_limited := true;
        v_budget := p_limit;
        IF q.concurrency IS NOT NULL THEN
            v_budget := least(v_budget, q.concurrency - (
                SELECT count(*) FROM {s}.jobs WHERE queue = q.name AND status = 'running'));
        END IF;
        IF q.rate_limit IS NOT NULL THEN
            v_window := floor(extract(epoch FROM v_now)::double precision / q.rate_period) * q.rate_period;
            IF v_window = q.window_start THEN
                v_budget := least(v_budget, q.rate_limit - q.window_count);
            ELSE
                v_budget := least(v_budget, q.rate_limit);
            END IF;
        END IF;
        IF v_budget > 0 THEN
            v_ids := v_ids || ARRAY(
                SELECT j.id FROM {s}.jobs j
                 WHERE j.queue = q.name AND j.status IN ('pending', 'scheduled')
                   AND (j.status = 'pending' OR j.run_at <= v_now)
                 ORDER BY j.priority DESC, j.run_at, j.id
                 LIMIT v_budget FOR UPDATE SKIP LOCKED);
        END IF;
    END LOOP;

    IF v_limited THEN
        -- Merge both kinds by claim order; rows locked but not chosen are released at commit.
        v_ids := ARRAY(SELECT j.id FROM {s}.jobs j WHERE j.id = ANY (v_ids)
                        ORDER BY j.priority DESC, j.run_at, j.id LIMIT p_limit);
        UPDATE {s}.queues u
           SET window_count = CASE WHEN u.window_start = c.w THEN u.window_count ELSE 0 END + c.n,
               window_start = c.w
          FROM (SELECT j.queue, count(*) AS n,
                       floor(extract(epoch FROM v_now)::double precision / qq.rate_period)
                           * qq.rate_period AS w
                  FROM {s}.jobs j JOIN {s}.queues qq ON qq.name = j.queue
                 WHERE j.id = ANY (v_ids) AND qq.rate_limit IS NOT NULL
                 GROUP BY j.queue, qq.rate_period) c
         WHERE u.name = c.queue;
    END IF;

    RETURN QUERY
    UPDATE {s}.jobs j
       SET status = 'running', attempt = j.attempt + 1, started_at = v_now, worker_id = p_worker,
           lease_token = replace(gen_random_uuid()::text, '-', ''), lease_expires_at = v_expires,
           cancel_requested = false
     WHERE j.id = ANY (v_ids)
    RETURNING j.*;
END
$fn$;
"""

# 2: claims filtered by task name (a worker claims only the tasks it knows), and the task
# names each worker registers. The claim keeps its first five parameters, so a process of the
# previous version calling it with five arguments still works during a rolling upgrade.
_V2 = """
DROP FUNCTION {s}.claim(text[], integer, text, double precision, timestamptz);
ALTER TABLE {s}.workers ADD COLUMN tasks jsonb NOT NULL DEFAULT '[]';

-- Claim in one round-trip. Queues without limits take the fast path (one SKIP LOCKED select);
-- queues with a concurrency or rate limit are locked one by one (in name order, so claimers
-- never deadlock) to read their budget, then candidates of both kinds are merged by priority.
-- p_tasks (NULL = any) keeps jobs of those tasks only; others are neither locked nor changed.
CREATE FUNCTION {s}.claim(p_queues text[], p_limit integer, p_worker text,
                          p_lease double precision, p_now timestamptz,
                          p_tasks text[] DEFAULT NULL)
RETURNS SETOF {s}.jobs LANGUAGE plpgsql AS $fn$
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_expires timestamptz := v_now + make_interval(secs => p_lease);
    v_skip text[];
    v_ids text[];
    v_budget bigint;
    v_window double precision;
    v_limited boolean := false;
    q record;
BEGIN
    SELECT coalesce(array_agg(name), '{}') INTO v_skip FROM {s}.queues
     WHERE paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL;

    IF p_queues IS NULL THEN
        SELECT coalesce(array_agg(c.id), '{}') INTO v_ids FROM (
            SELECT j.id FROM {s}.jobs j
             WHERE j.status IN ('pending', 'scheduled') AND (j.status = 'pending' OR j.run_at <= v_now)
               AND (p_tasks IS NULL OR j.task = ANY (p_tasks))
               AND NOT (j.queue = ANY (v_skip))
             ORDER BY j.priority DESC, j.run_at, j.id
             LIMIT p_limit FOR UPDATE SKIP LOCKED) c;
    ELSE
        SELECT coalesce(array_agg(c.id), '{}') INTO v_ids FROM (
            SELECT j.id FROM {s}.jobs j
             WHERE j.status IN ('pending', 'scheduled') AND (j.status = 'pending' OR j.run_at <= v_now)
               AND (p_tasks IS NULL OR j.task = ANY (p_tasks))
               AND j.queue = ANY (p_queues) AND NOT (j.queue = ANY (v_skip))
             ORDER BY j.priority DESC, j.run_at, j.id
             LIMIT p_limit FOR UPDATE SKIP LOCKED) c;
    END IF;

    FOR q IN SELECT * FROM {s}.queues
              WHERE NOT paused AND (concurrency IS NOT NULL OR rate_limit IS NOT NULL)
                AND (p_queues IS NULL OR name = ANY (p_queues))
              ORDER BY name FOR UPDATE
    LOOP
        v_limited := true;
        v_budget := p_limit;
        IF q.concurrency IS NOT NULL THEN
            v_budget := least(v_budget, q.concurrency - (
                SELECT count(*) FROM {s}.jobs WHERE queue = q.name AND status = 'running'));
        END IF;
        IF q.rate_limit IS NOT NULL THEN
            v_window := floor(extract(epoch FROM v_now)::double precision / q.rate_period) * q.rate_period;
            IF v_window = q.window_start THEN
                v_budget := least(v_budget, q.rate_limit - q.window_count);
            ELSE
                v_budget := least(v_budget, q.rate_limit);
            END IF;
        END IF;
        IF v_budget > 0 THEN
            v_ids := v_ids || ARRAY(
                SELECT j.id FROM {s}.jobs j
                 WHERE j.queue = q.name AND j.status IN ('pending', 'scheduled')
                   AND (j.status = 'pending' OR j.run_at <= v_now)
                   AND (p_tasks IS NULL OR j.task = ANY (p_tasks))
                 ORDER BY j.priority DESC, j.run_at, j.id
                 LIMIT v_budget FOR UPDATE SKIP LOCKED);
        END IF;
    END LOOP;

    IF v_limited THEN
        -- Merge both kinds by claim order; rows locked but not chosen are released at commit.
        v_ids := ARRAY(SELECT j.id FROM {s}.jobs j WHERE j.id = ANY (v_ids)
                        ORDER BY j.priority DESC, j.run_at, j.id LIMIT p_limit);
        UPDATE {s}.queues u
           SET window_count = CASE WHEN u.window_start = c.w THEN u.window_count ELSE 0 END + c.n,
               window_start = c.w
          FROM (SELECT j.queue, count(*) AS n,
                       floor(extract(epoch FROM v_now)::double precision / qq.rate_period)
                           * qq.rate_period AS w
                  FROM {s}.jobs j JOIN {s}.queues qq ON qq.name = j.queue
                 WHERE j.id = ANY (v_ids) AND qq.rate_limit IS NOT NULL
                 GROUP BY j.queue, qq.rate_period) c
         WHERE u.name = c.queue;
    END IF;

    RETURN QUERY
    UPDATE {s}.jobs j
       SET status = 'running', attempt = j.attempt + 1, started_at = v_now, worker_id = p_worker,
           lease_token = replace(gen_random_uuid()::text, '-', ''), lease_expires_at = v_expires,
           cancel_requested = false
     WHERE j.id = ANY (v_ids)
    RETURNING j.*;
END
$fn$;
"""

# 3: rescues counted apart from attempts (a lost worker does not use the retry budget). The
# claim function returns `{s}.jobs` rows, so it follows the new columns by itself.
_V3 = """
ALTER TABLE {s}.jobs ADD COLUMN rescues integer NOT NULL DEFAULT 0,
                     ADD COLUMN max_rescues integer NOT NULL DEFAULT 3;
"""

# 4: each worker reports its lost handler threads (threads that would not stop after a timeout).
_V4 = """
ALTER TABLE {s}.workers ADD COLUMN lost_threads integer NOT NULL DEFAULT 0;
"""

# 5: statistics per task (the key gains `task`, "" for older rows), latency histograms one
# row per cell, and sampled queue depths.
_V5 = """
ALTER TABLE {s}.stats ADD COLUMN task text NOT NULL DEFAULT '';
ALTER TABLE {s}.stats DROP CONSTRAINT stats_pkey;
ALTER TABLE {s}.stats ADD PRIMARY KEY (minute, queue, task);
CREATE TABLE {s}.stats_latency (
    minute timestamptz NOT NULL,
    queue text NOT NULL,
    task text NOT NULL,
    cell smallint NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (minute, queue, task, cell)
);
CREATE TABLE {s}.stats_depth (
    minute timestamptz NOT NULL,
    queue text NOT NULL,
    depth bigint NOT NULL,
    PRIMARY KEY (minute, queue)
);
"""

# 6: search (`JobFilter.q`): `{s}.search_text(jobs)` is what is searched, and a pg_trgm GIN
# index over it answers ILIKE '%text%'. pg_trgm ships in contrib and is a trusted extension
# (a database owner may create it); where it cannot be created the migration still succeeds
# and searches scan the table (docs/postgres.md).
_V6 = """
CREATE FUNCTION {s}.search_text(j {s}.jobs) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT concat_ws(' ', j.id, j.task, j.queue, j.unique_key, j.payload::text, j.errors::text)
$fn$;
DO $do$
DECLARE v_schema text;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN insufficient_privilege OR undefined_file OR unique_violation
              OR duplicate_object THEN
        RAISE NOTICE 'pg_trgm is not available: job searches scan the jobs table';
    END;
    SELECT n.nspname INTO v_schema FROM pg_extension e
      JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    IF v_schema IS NOT NULL THEN
        EXECUTE format('CREATE INDEX jobs_search ON {s}.jobs USING gin ({s}.search_text(jobs) %I.gin_trgm_ops)',
                       v_schema);
    END IF;
END
$do$;
"""

# 7: workflows (`core.workflow`): a job's workflow, step name and metadata, the `blocked`
# status, workflow headers and edges, and the functions that move steps along the edges
# (`graph.py`).
_V7 = WORKFLOWS_MIGRATION

# 8: claims and listings that stay fast at millions of jobs, whatever the planner's statistics.
# Right after a bulk load (and until autovacuum's next ANALYZE, or for good where autovacuum is
# off) the planner believes the jobs table nearly empty, and planned a claim as "fetch every
# ready job of the queue, sort them all, keep the first n": 1.9 s at 1M pending jobs instead of
# 0.4 ms. The claim now reads each queue on its own (a LATERAL join over the queue names, one
# ordered scan of jobs_ready_queue per queue that stops after n rows) with sorting disabled
# while it plans those scans: the ordered index scan is then the only plan left, statistics or
# none. Candidates of several queues are merged by claim order (rows locked but not chosen are
# released at commit, as for limited queues). Listings newest first by status and/or queue
# read an index in id order and stop at the page's end instead of sorting every match.
_V8 = """
CREATE INDEX jobs_status_id ON {s}.jobs (status, id);
CREATE INDEX jobs_queue_id ON {s}.jobs (queue, id);
CREATE INDEX jobs_queue_status_id ON {s}.jobs (queue, status, id);

-- Same parameters and results as version 2's. Its `SET enable_sort = on` confines the
-- set_config calls below to this function (it is restored when the function returns). JIT
-- off: a disabled sort costs 1e10 in the planner's units, which would make every claim pay
-- ~100 ms of JIT compilation (jit_above_cost), and no claim runs long enough to gain from it.
CREATE OR REPLACE FUNCTION {s}.claim(p_queues text[], p_limit integer, p_worker text,
                                     p_lease double precision, p_now timestamptz,
                                     p_tasks text[] DEFAULT NULL)
RETURNS SETOF {s}.jobs LANGUAGE plpgsql SET enable_sort = on SET jit = off AS $fn$
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_expires timestamptz := v_now + make_interval(secs => p_lease);
    v_skip text[];
    v_ids text[];
    v_budget bigint;
    v_window double precision;
    v_limited boolean := false;
    q record;
BEGIN
    SELECT coalesce(array_agg(name), '{}') INTO v_skip FROM {s}.queues
     WHERE paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL;

    -- Candidate scans must follow the ready indexes in claim order (see migration 8).
    PERFORM set_config('enable_sort', 'off', true);
    IF p_queues IS NULL THEN
        SELECT coalesce(array_agg(c.id), '{}') INTO v_ids FROM (
            SELECT j.id FROM {s}.jobs j
             WHERE j.status IN ('pending', 'scheduled') AND (j.status = 'pending' OR j.run_at <= v_now)
               AND (p_tasks IS NULL OR j.task = ANY (p_tasks))
               AND NOT (j.queue = ANY (v_skip))
             ORDER BY j.priority DESC, j.run_at, j.id
             LIMIT p_limit FOR UPDATE SKIP LOCKED) c;
    ELSE
        SELECT coalesce(array_agg(c.id ORDER BY c.priority DESC, c.run_at, c.id), '{}') INTO v_ids
          FROM (
            SELECT c.id, c.priority, c.run_at
              FROM (SELECT DISTINCT x.name FROM unnest(p_queues) x(name)
                     WHERE NOT (x.name = ANY (v_skip))) qn
             CROSS JOIN LATERAL (
                SELECT j.id, j.priority, j.run_at FROM {s}.jobs j
                 WHERE j.queue = qn.name AND j.status IN ('pending', 'scheduled')
                   AND (j.status = 'pending' OR j.run_at <= v_now)
                   AND (p_tasks IS NULL OR j.task = ANY (p_tasks))
                 ORDER BY j.priority DESC, j.run_at, j.id
                 LIMIT p_limit FOR UPDATE SKIP LOCKED) c
             ORDER BY c.priority DESC, c.run_at, c.id
             LIMIT p_limit) c;
    END IF;

    FOR q IN SELECT * FROM {s}.queues
              WHERE NOT paused AND (concurrency IS NOT NULL OR rate_limit IS NOT NULL)
                AND (p_queues IS NULL OR name = ANY (p_queues))
              ORDER BY name FOR UPDATE
    LOOP
        v_limited := true;
        v_budget := p_limit;
        IF q.concurrency IS NOT NULL THEN
            v_budget := least(v_budget, q.concurrency - (
                SELECT count(*) FROM {s}.jobs WHERE queue = q.name AND status = 'running'));
        END IF;
        IF q.rate_limit IS NOT NULL THEN
            v_window := floor(extract(epoch FROM v_now)::double precision / q.rate_period) * q.rate_period;
            IF v_window = q.window_start THEN
                v_budget := least(v_budget, q.rate_limit - q.window_count);
            ELSE
                v_budget := least(v_budget, q.rate_limit);
            END IF;
        END IF;
        IF v_budget > 0 THEN
            v_ids := v_ids || ARRAY(
                SELECT j.id FROM {s}.jobs j
                 WHERE j.queue = q.name AND j.status IN ('pending', 'scheduled')
                   AND (j.status = 'pending' OR j.run_at <= v_now)
                   AND (p_tasks IS NULL OR j.task = ANY (p_tasks))
                 ORDER BY j.priority DESC, j.run_at, j.id
                 LIMIT v_budget FOR UPDATE SKIP LOCKED);
        END IF;
    END LOOP;
    -- The merge below sorts a handful of rows found by primary key: sorting is right there.
    PERFORM set_config('enable_sort', 'on', true);

    IF v_limited THEN
        -- Merge both kinds by claim order; rows locked but not chosen are released at commit.
        v_ids := ARRAY(SELECT j.id FROM {s}.jobs j WHERE j.id = ANY (v_ids)
                        ORDER BY j.priority DESC, j.run_at, j.id LIMIT p_limit);
        UPDATE {s}.queues u
           SET window_count = CASE WHEN u.window_start = c.w THEN u.window_count ELSE 0 END + c.n,
               window_start = c.w
          FROM (SELECT j.queue, count(*) AS n,
                       floor(extract(epoch FROM v_now)::double precision / qq.rate_period)
                           * qq.rate_period AS w
                  FROM {s}.jobs j JOIN {s}.queues qq ON qq.name = j.queue
                 WHERE j.id = ANY (v_ids) AND qq.rate_limit IS NOT NULL
                 GROUP BY j.queue, qq.rate_period) c
         WHERE u.name = c.queue;
    END IF;

    RETURN QUERY
    UPDATE {s}.jobs j
       SET status = 'running', attempt = j.attempt + 1, started_at = v_now, worker_id = p_worker,
           lease_token = replace(gen_random_uuid()::text, '-', ''), lease_expires_at = v_expires,
           cancel_requested = false
     WHERE j.id = ANY (v_ids)
    RETURNING j.*;
END
$fn$;
"""

#: Migration n (1-based) brings the schema from version n-1 to n. Never edit a released one.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8)
SCHEMA_VERSION = len(MIGRATIONS)


def _lock_key(schema: str) -> int:
    # One advisory lock per schema, so concurrent `migrate` runs apply each step once.
    return zlib.crc32(f"taskyard-migrate:{schema}".encode()) - (1 << 31)


async def read_version(conn: psycopg.AsyncConnection, schema: str) -> int | None:
    """The schema's version, or None when taskyard's tables do not exist there yet."""
    cur = await conn.execute("SELECT to_regclass(%s)", (f"{schema}.meta",))
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    cur = await conn.execute(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def apply_migrations(conn: psycopg.AsyncConnection, schema: str) -> int:
    """Apply every missing migration, each in its own transaction; returns the version."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        version = await read_version(conn, schema) or 0
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"PostgreSQL schema {schema!r} is at version {version}, newer than this "
                f"taskyard ({SCHEMA_VERSION}); upgrade taskyard"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            await conn.execute(MIGRATIONS[number - 1].replace("{s}", schema))
            await conn.execute(
                f"INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(number),),
            )
    return SCHEMA_VERSION
