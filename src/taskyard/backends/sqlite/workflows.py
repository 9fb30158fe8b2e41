"""The SQLite backend's workflows: enqueue a whole graph, read, list, cancel and resume.
Each function runs inside the transaction its caller opened."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from taskyard.core.job import FINISHED_STATUSES, RETRYABLE_STATUSES, Job, cancelled_job
from taskyard.core.workflow import (
    Edge,
    EdgeState,
    Policy,
    Workflow,
    WorkflowDraft,
    WorkflowHeader,
    WorkflowPage,
)
from taskyard.errors import WorkflowNotFound

from .graph import retried_step
from .rows import JOB_COLUMNS, from_us, job_from_row, job_to_row, save, to_us

__all__ = ("cancel", "enqueue", "list_page", "read", "retry")

_INSERT = (
    f"INSERT INTO jobs ({JOB_COLUMNS}, step_index) "
    f"VALUES ({', '.join('?' for _ in JOB_COLUMNS.split(', '))}, ?)"
)


def enqueue(conn: sqlite3.Connection, draft: WorkflowDraft, now: datetime) -> Workflow:
    """Insert the header, every step (blocked when it has parents) and every edge, open; a
    workflow already stored is returned as it is."""
    stored = read(conn, draft.id)
    if stored is not None:
        return stored
    conn.execute(
        "INSERT INTO workflows (id, name, created_at) VALUES (?, ?, ?)",
        (draft.id, draft.name, to_us(now)),
    )
    steps = draft.jobs(now)
    conn.executemany(_INSERT, [(*job_to_row(job), i) for i, job in enumerate(steps)])
    conn.executemany(
        "INSERT OR IGNORE INTO queues (name) VALUES (?)", [(q,) for q in sorted({j.queue for j in steps})]
    )
    conn.executemany(
        "INSERT INTO workflow_edges (parent, child, workflow_id, policy, state, position) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(e.parent, e.child, draft.id, e.policy.value, e.state.value, i) for i, e in enumerate(draft.edges)],
    )
    return _must_read(conn, draft.id)


def read(conn: sqlite3.Connection, workflow_id: str) -> Workflow | None:
    """The workflow with its steps (in step order, pruned ones left out) and edges (in the
    draft's order), or None."""
    row = conn.execute(
        "SELECT id, name, created_at, cancelled_at FROM workflows WHERE id = ?", (workflow_id,)
    ).fetchone()
    if row is None:
        return None
    created_at = from_us(row[2])
    assert created_at is not None
    header = WorkflowHeader(row[0], row[1], created_at, from_us(row[3]))
    steps = tuple(
        job_from_row(r)
        for r in conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE workflow_id = ? ORDER BY step_index", (workflow_id,)
        )
    )
    edges = tuple(
        Edge(parent, child, Policy(policy), EdgeState(state))
        for parent, child, policy, state in conn.execute(
            "SELECT parent, child, policy, state FROM workflow_edges WHERE workflow_id = ? "
            "ORDER BY position",
            (workflow_id,),
        )
    )
    return Workflow(header, steps, edges)


def _must_read(conn: sqlite3.Connection, workflow_id: str) -> Workflow:
    found = read(conn, workflow_id)
    if found is None:
        raise WorkflowNotFound(workflow_id)
    return found


def list_page(conn: sqlite3.Connection, limit: int, cursor: str | None) -> WorkflowPage:
    """Workflows newest first (by id), `limit` of them after `cursor`."""
    sql = "SELECT id FROM workflows"
    args: tuple[object, ...] = ()
    if cursor is not None:
        sql += " WHERE id < ?"
        args = (cursor,)
    ids = [r[0] for r in conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit + 1))]
    page = [w for i in ids[:limit] if (w := read(conn, i)) is not None]
    return WorkflowPage(page, page[-1].id if len(ids) > limit and page else None)


def cancel(conn: sqlite3.Connection, workflow_id: str, now: datetime) -> Workflow:
    """Mark the header cancelled (kept when already set) and cancel every step not finished
    (a running one is asked to stop)."""
    wf = _must_read(conn, workflow_id)
    conn.execute(
        "UPDATE workflows SET cancelled_at = coalesce(cancelled_at, ?) WHERE id = ?",
        (to_us(now), workflow_id),
    )
    for job in wf.steps:
        if job.status not in FINISHED_STATUSES:
            save(conn, cancelled_job(job, now))
    return _must_read(conn, workflow_id)


def retry(conn: sqlite3.Connection, workflow_id: str, now: datetime) -> Workflow:
    """Clear the cancel, then retry, in step order, every failed or cancelled step with no
    `failed` edge into it (the steps it cancelled come back through its retry)."""
    wf = _must_read(conn, workflow_id)
    conn.execute("UPDATE workflows SET cancelled_at = NULL WHERE id = ?", (workflow_id,))
    for step_id in [j.id for j in wf.steps]:
        job = _get(conn, step_id)  # read again: an earlier retry may have revived it
        if job is None or job.status not in RETRYABLE_STATUSES:
            continue
        if conn.execute(
            "SELECT 1 FROM workflow_edges WHERE child = ? AND state = 'failed'", (step_id,)
        ).fetchone():
            continue
        retried_step(conn, job, now)
    return _must_read(conn, workflow_id)


def _get(conn: sqlite3.Connection, job_id: str) -> Job | None:
    row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else job_from_row(row)


def prune(conn: sqlite3.Connection, finished_before: datetime, limit: int) -> int:
    """Delete up to `limit` workflows with no step left to run whose last step finished (or,
    with no step left, which was created) before `finished_before`: headers, steps, edges.
    Reads each workflow's steps through the `jobs_workflow` index."""
    ids = [r[0] for r in conn.execute(
        "SELECT w.id FROM workflows w WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.workflow_id = w.id "
        "AND j.status IN ('blocked', 'scheduled', 'pending', 'running')) "
        "AND coalesce((SELECT max(j.finished_at) FROM jobs j WHERE j.workflow_id = w.id), w.created_at) < ? "
        "ORDER BY w.id LIMIT ?",
        (to_us(finished_before), limit),
    ).fetchall()]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        conn.execute(f"DELETE FROM workflow_edges WHERE workflow_id IN ({marks})", chunk)
        conn.execute(f"DELETE FROM jobs WHERE workflow_id IN ({marks})", chunk)
        conn.execute(f"DELETE FROM workflows WHERE id IN ({marks})", chunk)
    return len(ids)
