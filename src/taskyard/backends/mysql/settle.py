"""The one owned write: `jobs_settle`. Outcomes are grouped by kind; each group is one
transaction that reads its jobs with a locking read, keeps those its lease token still owns
(running, same token), makes each job's new state with the rules of `core` and writes them
back in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asyncmy.cursors import Cursor

from taskyard.core.job import Job, JobStatus, rescue_decision
from taskyard.core.settle import Settle, Settled, SettleKind

from .jobs import fetch_jobs, marks, save_many, server_now
from .rows import JOB_COLUMNS
from .schema import Tables

__all__ = ("settle_group", "settled_job")

S = JobStatus
K = SettleKind


def settled_job(outcome: Settle, job: Job, now: datetime) -> Job:
    """`job` (running, owned by the outcome's token) after `outcome`, at `now`."""
    off = {"lease_token": None, "lease_expires_at": None, "cancel_requested": False}
    kind = outcome.kind
    if kind is K.COMPLETED:
        progress = outcome.progress if outcome.progress is not None else job.progress
        return job.replace(
            status=S.COMPLETED, result=outcome.result, finished_at=now, progress=progress, **off
        )
    if kind is K.FAILED:
        assert outcome.error is not None
        errors = (*job.errors, outcome.error)
        if outcome.retry_at is None:
            return job.replace(status=S.FAILED, errors=errors, finished_at=now, **off)
        return job.replace(status=S.SCHEDULED, errors=errors, run_at=outcome.retry_at, **off)
    if kind is K.SNOOZED:
        assert outcome.run_at is not None
        return job.replace(
            status=S.SCHEDULED, run_at=outcome.run_at, max_attempts=job.max_attempts + 1, **off
        )
    if kind is K.CANCELLED:
        return job.replace(
            status=S.CANCELLED, finished_at=now, result={"cancelled": outcome.reason}, **off
        )
    if kind is K.RELEASED:
        return job.replace(
            status=S.PENDING, attempt=max(job.attempt - 1, 0), worker_id=None, **off
        )
    return rescue_decision(job, now, outcome.reason).apply(job, now)


async def settle_group(
    cur: Cursor, t: Tables, outcomes: Sequence[Settle], now: datetime | None
) -> tuple[dict[int, Settled], set[str]]:
    """Settle outcomes of one kind (indexed by their place in the caller's batch): the
    answers by index, and the queues given a pending job."""
    at = await server_now(cur, now)
    ids = list(dict.fromkeys(o.job_id for o in outcomes))
    rows = await fetch_jobs(
        cur,
        f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE id IN ({marks(len(ids))}) "
        "AND status = 'running' FOR UPDATE",
        ids,
    )
    current = {j.id: j for j in rows}
    answers: dict[int, Settled] = {}
    written: list[Job] = []
    for index, outcome in enumerate(outcomes):
        job = current.get(outcome.job_id)
        if job is None or job.status is not S.RUNNING or job.lease_token != outcome.lease_token:
            answers[index] = Settled(outcome.job_id, owned=False)
            continue
        after = settled_job(outcome, job, at)
        current[job.id] = after  # a second outcome for the same run is refused
        written.append(after)
        answers[index] = Settled(outcome.job_id, owned=True, job=after)
    await save_many(cur, t, written)
    return answers, {j.queue for j in written if j.status is S.PENDING}
