"""Workflows on MySQL: headers and edges, and the rules of `core.workflow` carried out on the
cursor of the transaction that finishes, cancels or retries a step (so a step's children move
in the same commit as the step). Rows are locked parent first, then edges, then children.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asyncmy.cursors import Cursor

from taskyard.core.job import (
    FINISHED_STATUSES,
    RETRYABLE_STATUSES,
    Job,
    JobStatus,
    cancelled_job,
    retried_job,
)
from taskyard.core.workflow import (
    Edge,
    EdgeState,
    Policy,
    Workflow,
    WorkflowDraft,
    WorkflowHeader,
    WorkflowPage,
    edge_state_after,
)
from taskyard.errors import InvalidTransitionError, JobNotFound, WorkflowNotFound

from . import jobs
from .rows import JOB_COLUMNS, db_time, utc
from .schema import Tables

__all__ = (
    "after_finish",
    "cancel",
    "enqueue",
    "prune",
    "read",
    "read_page",
    "rescue_expired",
    "resume",
    "retry",
    "retry_failed",
    "stop",
)

S = JobStatus
E = EdgeState


async def _in_states(cur: Cursor, t: Tables, child: str) -> list[tuple[str, EdgeState]]:
    await cur.execute(f"SELECT parent, state FROM {t.edges} WHERE child = %s FOR UPDATE", (child,))
    return [(str(p), EdgeState(s)) for p, s in await cur.fetchall()]


async def after_finish(cur: Cursor, t: Tables, finished: Sequence[Job], at: datetime) -> set[str]:
    """For each workflow step among `finished` that has just finished: settle its open edges
    by their policy, unblock children left with nothing open, cancel those a `fail` edge
    failed, and carry on from each cancelled child. Returns the queues given a pending job."""
    work = [j for j in finished if j.workflow_id is not None and j.status in FINISHED_STATUSES]
    woken: set[str] = set()
    while work:
        parent = work.pop()
        await cur.execute(
            f"SELECT child, policy FROM {t.edges} WHERE parent = %s AND state = 'open' FOR UPDATE",
            (parent.id,),
        )
        edges = [(str(c), Policy(p)) for c, p in await cur.fetchall()]
        if not edges:
            continue
        by_state: dict[EdgeState, list[str]] = {}
        for child_id, policy in edges:
            by_state.setdefault(edge_state_after(parent.status, policy), []).append(child_id)
        for state, children in by_state.items():
            await cur.execute(
                f"UPDATE {t.edges} SET state = %s WHERE parent = %s AND child IN ({jobs.marks(len(children))})",
                (state.value, parent.id, *children),
            )
        ids = [c for c, _ in edges]
        blocked = await jobs.fetch_jobs(
            cur,
            f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE id IN ({jobs.marks(len(ids))}) "
            "AND status = 'blocked' FOR UPDATE",
            ids,
        )
        changed: list[Job] = []
        for child in blocked:
            states = {s for _, s in await _in_states(cur, t, child.id)}
            if E.FAILED in states:
                reason = f"parent step {parent.step!r} {parent.status.value}"
                after = child.replace(status=S.CANCELLED, finished_at=at, result={"cancelled": reason})
                work.append(after)
            elif E.OPEN not in states:
                after = child.replace(status=S.PENDING, run_at=at)
                woken.add(after.queue)
            else:
                continue
            changed.append(after)
        await jobs.save_many(cur, t, changed)
    return woken


async def _revive(cur: Cursor, t: Tables, parent_id: str, at: datetime) -> None:
    """After a manual retry of step `parent_id`: reopen its edges that failed (and the done
    ones into children still blocked), and bring back to `blocked` each child it had
    cancelled that has no failed edge left, down the graph."""
    work = [parent_id]
    while work:
        pid = work.pop()
        await cur.execute(
            f"SELECT e.child, e.state, j.status FROM {t.edges} e JOIN {t.jobs} j ON j.id = e.child "
            "WHERE e.parent = %s FOR UPDATE",
            (pid,),
        )
        for child, state, status in list(await cur.fetchall()):
            if state == E.FAILED.value or (state == E.DONE.value and status == S.BLOCKED.value):
                await cur.execute(
                    f"UPDATE {t.edges} SET state = 'open' WHERE parent = %s AND child = %s", (pid, child)
                )
            if state != E.FAILED.value or status != S.CANCELLED.value:
                continue
            if any(s is E.FAILED for _, s in await _in_states(cur, t, child)):
                continue
            job = await jobs.get(cur, t, child, lock=True)
            assert job is not None
            await jobs.save_many(cur, t, [retried_job(job, at, blocked=True)])
            work.append(child)


async def _retry_step(cur: Cursor, t: Tables, job: Job, at: datetime) -> Job:
    """The manual retry of workflow step `job` (locked), with its children revived."""
    states = await _in_states(cur, t, job.id)
    for parent, state in states:
        if state is E.FAILED:
            raise InvalidTransitionError.parent_step_failed(job.id, job.step, parent)
    after = retried_job(job, at, blocked=any(s is E.OPEN for _, s in states))
    await jobs.save_many(cur, t, [after])
    await _revive(cur, t, job.id, at)
    return after


async def retry(cur: Cursor, t: Tables, job_id: str, now: datetime | None) -> Job:
    """`jobs.retry`, with the workflow rules for a step."""
    job = await jobs.get(cur, t, job_id, lock=True)
    if job is None:
        raise JobNotFound(job_id)
    if job.workflow_id is None:
        return await jobs.retry(cur, t, job_id, now)
    return await _retry_step(cur, t, job, await jobs.server_now(cur, now))


async def retry_failed(cur: Cursor, t: Tables, queue: str | None, now: datetime | None) -> list[Job]:
    """`jobs.retry_failed`, each retried workflow step reviving the children it cancelled (a
    step that ran and failed has no failed or open edge into it)."""
    at = await jobs.server_now(cur, now)
    retried = await jobs.retry_failed(cur, t, queue, at)
    for job in retried:
        if job.workflow_id is not None:
            await _revive(cur, t, job.id, at)
    return retried


async def cancel(cur: Cursor, t: Tables, job_id: str, now: datetime | None) -> tuple[Job, set[str]]:
    """`jobs.cancel`, then the rules for a step it cancelled."""
    at = await jobs.server_now(cur, now)
    job = await jobs.cancel(cur, t, job_id, at)
    return job, await after_finish(cur, t, [job], at)


async def rescue_expired(cur: Cursor, t: Tables, now: datetime | None) -> tuple[Any, set[str]]:
    """`jobs.rescue_expired`, then the rules for the steps it failed."""
    at = await jobs.server_now(cur, now)
    report, woken = await jobs.rescue_expired(cur, t, at)
    if report.failed:
        failed = await jobs.fetch_jobs(
            cur,
            f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE id IN ({jobs.marks(len(report.failed))}) "
            "AND workflow_id IS NOT NULL",
            report.failed,
        )
        woken |= await after_finish(cur, t, failed, at)
    return report, woken


# -- workflows ----------------------------------------------------------------------------------
async def _header(cur: Cursor, t: Tables, workflow_id: str, *, lock: bool = False) -> WorkflowHeader | None:
    await cur.execute(
        f"SELECT id, name, created_at, cancelled_at FROM {t.workflows} WHERE id = %s"
        + (" FOR UPDATE" if lock else ""),
        (workflow_id,),
    )
    row: Any = await cur.fetchone()
    if row is None:
        return None
    created = utc(row[2])
    assert created is not None
    return WorkflowHeader(str(row[0]), str(row[1]), created, utc(row[3]))


async def read(cur: Cursor, t: Tables, workflow_id: str) -> Workflow | None:
    """The workflow with its steps (in step order) and edges, or None."""
    header = await _header(cur, t, workflow_id)
    if header is None:
        return None
    steps = await jobs.fetch_jobs(
        cur, f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE workflow_id = %s ORDER BY id", (workflow_id,)
    )
    await cur.execute(
        f"SELECT parent, child, policy, state FROM {t.edges} WHERE workflow_id = %s ORDER BY child, parent",
        (workflow_id,),
    )
    edges = tuple(Edge(str(p), str(c), Policy(po), EdgeState(s)) for p, c, po, s in await cur.fetchall())
    return Workflow(header, tuple(steps), edges)


async def _must_read(cur: Cursor, t: Tables, workflow_id: str) -> Workflow:
    found = await read(cur, t, workflow_id)
    if found is None:
        raise WorkflowNotFound(workflow_id)
    return found


async def read_page(cur: Cursor, t: Tables, limit: int, cursor: str | None) -> WorkflowPage:
    """Workflows newest first, one page."""
    where, args = ("WHERE id < %s", (cursor,)) if cursor else ("", ())
    await cur.execute(f"SELECT id FROM {t.workflows} {where} ORDER BY id DESC LIMIT %s", (*args, limit + 1))
    ids = [str(r[0]) for r in await cur.fetchall()]
    page = [w for i in ids[:limit] if (w := await read(cur, t, i)) is not None]
    return WorkflowPage(page, page[-1].id if len(ids) > limit and page else None)


async def enqueue(
    cur: Cursor, t: Tables, workflow: WorkflowDraft, now: datetime | None
) -> tuple[Workflow, set[str]]:
    """Store the header, the steps and the edges; a stored workflow is returned unchanged."""
    at = await jobs.server_now(cur, now)
    if await _header(cur, t, workflow.id, lock=True) is None:
        await cur.execute(
            f"INSERT INTO {t.workflows} (id, name, created_at) VALUES (%s, %s, %s)",
            (workflow.id, workflow.name, db_time(at)),
        )
        new = workflow.jobs(at)
        await jobs.insert_jobs(cur, t, new)
        for start in range(0, len(workflow.edges), 500):
            chunk = workflow.edges[start : start + 500]
            await cur.execute(
                f"INSERT INTO {t.edges} (parent, child, workflow_id, policy, state) VALUES "
                + ", ".join(["(%s, %s, %s, %s, 'open')"] * len(chunk)),
                [v for e in chunk for v in (e.parent, e.child, workflow.id, e.policy.value)],
            )
        woken = {j.queue for j in new if j.status is S.PENDING}
    else:
        woken = set()
    return await _must_read(cur, t, workflow.id), woken


async def stop(cur: Cursor, t: Tables, workflow_id: str, now: datetime | None) -> Workflow:
    """Cancel a whole workflow (see `Backend.workflow_cancel`)."""
    at = await jobs.server_now(cur, now)
    header = await _header(cur, t, workflow_id, lock=True)
    if header is None:
        raise WorkflowNotFound(workflow_id)
    if header.cancelled_at is None:
        await cur.execute(f"UPDATE {t.workflows} SET cancelled_at = %s WHERE id = %s", (db_time(at), workflow_id))
    steps = await jobs.fetch_jobs(
        cur,
        f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE workflow_id = %s "
        "AND status IN ('blocked', 'scheduled', 'pending', 'running') ORDER BY id FOR UPDATE",
        (workflow_id,),
    )
    await jobs.save_many(cur, t, [cancelled_job(j, at) for j in steps])
    return await _must_read(cur, t, workflow_id)


async def resume(cur: Cursor, t: Tables, workflow_id: str, now: datetime | None) -> tuple[Workflow, set[str]]:
    """Resume a workflow (see `Backend.workflow_retry`)."""
    at = await jobs.server_now(cur, now)
    if await _header(cur, t, workflow_id, lock=True) is None:
        raise WorkflowNotFound(workflow_id)
    await cur.execute(f"UPDATE {t.workflows} SET cancelled_at = NULL WHERE id = %s", (workflow_id,))
    await cur.execute(f"SELECT id FROM {t.jobs} WHERE workflow_id = %s ORDER BY id", (workflow_id,))
    for (step_id,) in list(await cur.fetchall()):
        job = await jobs.get(cur, t, str(step_id), lock=True)
        if job is None or job.status not in RETRYABLE_STATUSES:
            continue
        if any(s is E.FAILED for _, s in await _in_states(cur, t, job.id)):
            continue
        await _retry_step(cur, t, job, at)
    after = await _must_read(cur, t, workflow_id)
    return after, {j.queue for j in after.steps if j.status is S.PENDING}


async def prune(cur: Cursor, t: Tables, finished_before: datetime, limit: int) -> int:
    """Delete up to `limit` workflows with no step left to run whose last step finished (or,
    with no step left, which was created) before `finished_before`: headers, steps, edges.
    Reads each workflow's steps through the `jobs_workflow` index."""
    await cur.execute(
        f"SELECT w.id FROM {t.workflows} w WHERE NOT EXISTS (SELECT 1 FROM {t.jobs} j "
        "WHERE j.workflow_id = w.id AND j.status IN ('blocked', 'scheduled', 'pending', 'running')) "
        f"AND coalesce((SELECT max(j.finished_at) FROM {t.jobs} j WHERE j.workflow_id = w.id), w.created_at) < %s "
        "ORDER BY w.id LIMIT %s FOR UPDATE SKIP LOCKED",
        (db_time(finished_before), limit),
    )
    ids = [str(r[0]) for r in await cur.fetchall()]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        await cur.execute(f"DELETE FROM {t.edges} WHERE workflow_id IN ({jobs.marks(len(chunk))})", chunk)
        await cur.execute(f"DELETE FROM {t.jobs} WHERE workflow_id IN ({jobs.marks(len(chunk))})", chunk)
        await cur.execute(f"DELETE FROM {t.workflows} WHERE id IN ({jobs.marks(len(chunk))})", chunk)
    return len(ids)
