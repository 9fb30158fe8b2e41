"""The SQLite backend's workflow graph: the `core.workflow` rules carried out inside the
write transaction that finishes, cancels or retries a step (never by a later sweep).

Edges are rows of `workflow_edges`; a parent finds its children through the primary key
(parent, child), and a child asks whether it still has an `open` or a `failed` edge through
the index (child, state) — one index probe each, however many parents it has.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from taskyard.core.job import FINISHED_STATUSES, Job, JobStatus, retried_job
from taskyard.core.workflow import EdgeState, Policy, edge_state_after
from taskyard.errors import InvalidTransitionError

from .rows import JOB_COLUMNS, dumps, job_from_row, save, to_us

__all__ = ("after_finish", "retried_step", "step_finished")

S = JobStatus
_HAS_EDGE = "EXISTS (SELECT 1 FROM workflow_edges WHERE child = ? AND state = ?)"


def _has_edge(conn: sqlite3.Connection, child: str, state: EdgeState) -> bool:
    return bool(conn.execute(f"SELECT {_HAS_EDGE}", (child, state.value)).fetchone()[0])


def step_finished(
    conn: sqlite3.Connection, job_id: str, step: str | None, status: JobStatus, now: datetime
) -> int:
    """Step `job_id` has just finished with `status`: settle its open edges by their policy,
    unblock children left with nothing open, cancel children a `fail` edge failed, and carry
    on from each cancelled child. Returns how many steps became pending."""
    now_us = to_us(now)
    woken = 0
    work = [(job_id, step, status)]
    while work:
        parent, parent_step, parent_status = work.pop()
        after = {p: edge_state_after(parent_status, p).value for p in Policy}
        children = conn.execute(
            "UPDATE workflow_edges SET state = CASE policy WHEN 'fail' THEN ? "
            "WHEN 'continue' THEN ? ELSE ? END WHERE parent = ? AND state = 'open' RETURNING child",
            (after[Policy.FAIL], after[Policy.CONTINUE], after[Policy.IGNORE], parent),
        ).fetchall()
        reason = dumps({"cancelled": f"parent step {parent_step!r} {parent_status.value}"})
        for (child,) in sorted(children):
            row = conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, result = ? "
                f"WHERE id = ? AND status = 'blocked' AND {_HAS_EDGE} RETURNING step",
                (now_us, reason, child, child, EdgeState.FAILED.value),
            ).fetchone()
            if row is not None:
                work.append((child, row[0], S.CANCELLED))
                continue
            cur = conn.execute(
                "UPDATE jobs SET status = 'pending', run_at = ? "
                f"WHERE id = ? AND status = 'blocked' AND NOT {_HAS_EDGE}",
                (now_us, child, child, EdgeState.OPEN.value),
            )
            woken += cur.rowcount
    return woken


def after_finish(conn: sqlite3.Connection, job: Job, now: datetime) -> int:
    """Run the workflow rules when `job` (just written) is a finished workflow step; returns
    how many steps became pending (0 for any other job, at no cost)."""
    if job.workflow_id is None or job.status not in FINISHED_STATUSES:
        return 0
    return step_finished(conn, job.id, job.step, job.status, now)


def retried_step(conn: sqlite3.Connection, job: Job, now: datetime) -> Job:
    """The manual retry of workflow step `job`, written: refused while a parent's `fail` edge
    failed, `blocked` while an edge into it is open; the children it had cancelled are revived
    (back to `blocked`), and theirs, down the graph."""
    row = conn.execute(
        "SELECT parent FROM workflow_edges WHERE child = ? AND state = 'failed' ORDER BY parent LIMIT 1",
        (job.id,),
    ).fetchone()
    if row is not None:
        raise InvalidTransitionError.parent_step_failed(job.id, job.step, row[0])
    after = save(conn, retried_job(job, now, blocked=_has_edge(conn, job.id, EdgeState.OPEN)))
    work = [after.id]
    while work:
        parent = work.pop()
        rows = conn.execute(
            "SELECT e.child, e.state, j.status FROM workflow_edges e JOIN jobs j ON j.id = e.child "
            "WHERE e.parent = ? ORDER BY e.child",
            (parent,),
        ).fetchall()
        for child, state, status in rows:
            if state == EdgeState.FAILED or (state == EdgeState.DONE and status == S.BLOCKED):
                conn.execute(
                    "UPDATE workflow_edges SET state = 'open' WHERE parent = ? AND child = ?",
                    (parent, child),
                )
            if (
                state == EdgeState.FAILED
                and status == S.CANCELLED
                and not _has_edge(conn, child, EdgeState.FAILED)
            ):
                found = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (child,)).fetchone()
                save(conn, retried_job(job_from_row(found), now, blocked=True))
                work.append(child)
    return after

