"""The workflow graph in PostgreSQL (`core.workflow`): its tables and the PL/pgSQL functions
that carry out the rules inside the very write that finishes, cancels or retries a step.

Lock order, which keeps these writes free of deadlocks: a settle holds its running rows, then
takes the workflow's header row (`FOR UPDATE`, several in id order); every other writer of a
workflow's steps takes the header first. One header lock per workflow serialises its rules, so
of two parents finishing at once the second sees the first's edge settled and a child's last
parent always unblocks it. Functions run as VOLATILE: each statement in them reads a fresh
snapshot, so the second one sees what the first committed.
"""

from __future__ import annotations

__all__ = ("DEADLOCK_TRIES", "MIGRATION", "finishing")

#: How many times a write that PostgreSQL rolled back as a deadlock victim is tried. The lock
#: order above leaves one narrow crossing (`workflow_cancel` and a step claimed and settled
#: while it runs), and a settle of several kinds locks its workflows statement by statement.
DEADLOCK_TRIES = 3

#: The retried fields (`core.job.retried_job`), for a row aliased `j`, due at `v_now`.
_RETRIED = (
    "run_at = v_now, attempt = 0, rescues = 0, finished_at = NULL, result = NULL, "
    "progress = NULL, worker_id = NULL, lease_token = NULL, lease_expires_at = NULL, "
    "cancel_requested = false"
)

# 7: workflows. The old status CHECK is replaced by a wider one NOT VALID: every stored row met
# the narrower check, and validating would scan the whole jobs table under an exclusive lock.
MIGRATION = """
ALTER TABLE {s}.jobs ADD COLUMN workflow_id text, ADD COLUMN step text, ADD COLUMN meta jsonb;
ALTER TABLE {s}.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE {s}.jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('blocked', 'scheduled', 'pending', 'running', 'completed', 'failed', 'cancelled')) NOT VALID;
-- A workflow's steps; plain jobs are not in it.
CREATE INDEX jobs_workflow ON {s}.jobs (workflow_id) WHERE workflow_id IS NOT NULL;

-- `steps`: the step ids in step order (the draft's, parents first). Ids are time-sortable but
-- not ordered within one millisecond, so id order alone could differ from it.
CREATE TABLE {s}.workflows (
    id text PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL,
    cancelled_at timestamptz,
    steps text[] NOT NULL
);
-- The primary key finds a parent's children; (child, state) answers "has this child an open
-- (or failed) edge left" with one index probe however many parents it has.
CREATE TABLE {s}.workflow_edges (
    parent text NOT NULL,
    child text NOT NULL,
    workflow_id text NOT NULL,
    policy text NOT NULL CHECK (policy IN ('fail', 'continue', 'ignore')),
    state text NOT NULL CHECK (state IN ('open', 'done', 'failed')),
    PRIMARY KEY (parent, child)
);
CREATE INDEX workflow_edges_child ON {s}.workflow_edges (child, state);
CREATE INDEX workflow_edges_workflow ON {s}.workflow_edges (workflow_id);

-- Steps that have just finished (their rows written by the caller's statement, whose results
-- are passed in): settle their open edges by policy, cancel blocked children a `fail` edge
-- failed (and carry on from them, level by level), make pending the blocked children left
-- with no open edge, and wake their queues. Returns how many steps became pending.
CREATE FUNCTION {s}.steps_finished(p_ids text[], p_statuses text[], p_steps text[],
                                   p_workflows text[], p_now timestamptz)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_ids text[] := p_ids;
    v_statuses text[] := p_statuses;
    v_steps text[] := p_steps;
    v_child text[];
    v_state text[];
    v_pstep text[];
    v_pstatus text[];
    v_woken integer := 0;
    r record;
BEGIN
    PERFORM 1 FROM {s}.workflows WHERE id = ANY (p_workflows) ORDER BY id FOR UPDATE;
    WHILE cardinality(v_ids) > 0 LOOP
        WITH e AS (
            UPDATE {s}.workflow_edges e
               SET state = CASE WHEN p.status = 'completed' OR e.policy <> 'fail'
                                THEN 'done' ELSE 'failed' END
              FROM unnest(v_ids, v_statuses, v_steps) AS p(id, status, step)
             WHERE e.parent = p.id AND e.state = 'open'
            RETURNING e.child, e.state, p.step, p.status)
        SELECT array_agg(child), array_agg(state), array_agg(step), array_agg(status)
          INTO v_child, v_state, v_pstep, v_pstatus FROM e;
        EXIT WHEN v_child IS NULL;

        WITH c AS (
            UPDATE {s}.jobs j
               SET status = 'cancelled', finished_at = v_now, unique_active = NULL,
                   result = jsonb_build_object('cancelled', x.reason)
              FROM (SELECT DISTINCT ON (u.child) u.child,
                           format('parent step %L %s', u.step, u.status) AS reason
                      FROM unnest(v_child, v_state, v_pstep, v_pstatus) AS u(child, state, step, status)
                     WHERE u.state = 'failed' ORDER BY u.child, u.step) x
             WHERE j.id = x.child AND j.status = 'blocked'
            RETURNING j.id, j.step)
        SELECT coalesce(array_agg(id), '{}'), coalesce(array_agg(step), '{}')
          INTO v_ids, v_steps FROM c;
        v_statuses := array_fill('cancelled'::text, ARRAY[cardinality(v_ids)]);

        FOR r IN
            WITH w AS (
                UPDATE {s}.jobs j SET status = 'pending', run_at = v_now
                 WHERE j.id = ANY (v_child) AND j.status = 'blocked'
                   AND NOT EXISTS (SELECT 1 FROM {s}.workflow_edges f
                                    WHERE f.child = j.id AND f.state IN ('open', 'failed'))
                RETURNING j.queue)
            SELECT queue, count(*) AS n FROM w GROUP BY queue
        LOOP
            PERFORM pg_notify('taskyard_{s}', r.queue);
            v_woken := v_woken + r.n;
        END LOOP;
    END LOOP;
    RETURN v_woken;
END
$fn$;

-- The manual retry of one step, under its workflow's lock: nothing is written when the step
-- is not failed or cancelled (o_status says what it is) or while an edge into it is `failed`
-- (o_parent names that parent). Otherwise it becomes pending (blocked while an edge into it
-- is open) with the retried fields reset, and the children it had cancelled are revived:
-- their failed edges from it open again (and its done edges into blocked children), and a
-- cancelled child left with no failed edge goes back to blocked, and so on down the graph.
CREATE FUNCTION {s}.step_retry(p_id text, p_now timestamptz,
                               OUT o_retried boolean, OUT o_status text, OUT o_parent text)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_work text[];
    v_revive text[];
    v_queue text;
BEGIN
    o_retried := false;
    PERFORM 1 FROM {s}.workflows w WHERE w.id = (SELECT workflow_id FROM {s}.jobs WHERE id = p_id)
        FOR UPDATE;
    -- Only a failed or cancelled row is locked: a running one may be held by a settle that
    -- waits for the workflow's lock, which this transaction holds.
    SELECT status INTO o_status FROM {s}.jobs
     WHERE id = p_id AND status IN ('failed', 'cancelled') FOR UPDATE;
    IF NOT FOUND THEN
        SELECT status INTO o_status FROM {s}.jobs WHERE id = p_id;
        RETURN;
    END IF;
    SELECT parent INTO o_parent FROM {s}.workflow_edges
     WHERE child = p_id AND state = 'failed' ORDER BY parent LIMIT 1;
    IF o_parent IS NOT NULL THEN
        RETURN;
    END IF;
    UPDATE {s}.jobs j
       SET status = CASE WHEN EXISTS (SELECT 1 FROM {s}.workflow_edges f
                                       WHERE f.child = p_id AND f.state = 'open')
                         THEN 'blocked' ELSE 'pending' END, __RETRIED__
     WHERE j.id = p_id RETURNING j.status, j.queue INTO o_status, v_queue;
    o_retried := true;
    IF o_status = 'pending' THEN
        PERFORM pg_notify('taskyard_{s}', v_queue);
    END IF;
    v_work := ARRAY[p_id];
    WHILE cardinality(v_work) > 0 LOOP
        SELECT coalesce(array_agg(DISTINCT e.child), '{}') INTO v_revive
          FROM {s}.workflow_edges e JOIN {s}.jobs c ON c.id = e.child
         WHERE e.parent = ANY (v_work) AND e.state = 'failed' AND c.status = 'cancelled';
        UPDATE {s}.workflow_edges e SET state = 'open' FROM {s}.jobs c
         WHERE e.parent = ANY (v_work) AND c.id = e.child
           AND (e.state = 'failed' OR (e.state = 'done' AND c.status = 'blocked'));
        WITH r AS (
            UPDATE {s}.jobs j SET status = 'blocked', __RETRIED__
             WHERE j.id = ANY (v_revive) AND j.status = 'cancelled'
               AND NOT EXISTS (SELECT 1 FROM {s}.workflow_edges f
                                WHERE f.child = j.id AND f.state = 'failed')
            RETURNING j.id)
        SELECT coalesce(array_agg(id), '{}') INTO v_work FROM r;
    END LOOP;
END
$fn$;

-- Retry steps one after the other, in the order given (step order), skipping those
-- `step_retry` refuses; the workflows' locks are taken first, in id order. Returns how many.
CREATE FUNCTION {s}.steps_retry(p_ids text[], p_now timestamptz)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    v_id text;
    v_n integer := 0;
BEGIN
    PERFORM 1 FROM {s}.workflows
     WHERE id IN (SELECT workflow_id FROM {s}.jobs WHERE id = ANY (p_ids)) ORDER BY id FOR UPDATE;
    FOREACH v_id IN ARRAY p_ids LOOP
        IF (SELECT o_retried FROM {s}.step_retry(v_id, p_now)) THEN
            v_n := v_n + 1;
        END IF;
    END LOOP;
    RETURN v_n;
END
$fn$;

-- Cancel one blocked, scheduled or pending step under its workflow's lock and apply the
-- rules to its children; false when it was in no such status.
CREATE FUNCTION {s}.step_cancel(p_id text, p_now timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
    v_workflow text;
    v_step text;
BEGIN
    SELECT workflow_id INTO v_workflow FROM {s}.jobs WHERE id = p_id;
    PERFORM 1 FROM {s}.workflows WHERE id = v_workflow FOR UPDATE;
    UPDATE {s}.jobs SET status = 'cancelled', finished_at = coalesce(p_now, now()),
                        unique_active = NULL
     WHERE id = p_id AND status IN ('blocked', 'scheduled', 'pending')
    RETURNING step INTO v_step;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM {s}.steps_finished(ARRAY[p_id], ARRAY['cancelled'], ARRAY[v_step], ARRAY[v_workflow], p_now);
    RETURN true;
END
$fn$;
""".replace("__RETRIED__", _RETRIED)


def finishing(schema: str, now: str) -> str:
    """A CTE `g` that runs the rules for the finished workflow steps among the rows of CTE
    `u` (which returns id, status, step and workflow_id). Reference it (`SELECT count(*) FROM
    g`) so that it runs; it calls nothing when `u` wrote no workflow step."""
    return (
        f"g AS (SELECT {schema}.steps_finished(array_agg(id), array_agg(status), "
        f"array_agg(step), array_agg(workflow_id), {now}) FROM u WHERE workflow_id IS NOT NULL "
        "AND status IN ('completed', 'failed', 'cancelled') HAVING count(*) > 0)"
    )
