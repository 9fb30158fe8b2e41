"""The one owned write: `jobs_settle`. Outcomes are grouped by kind; each group is one
transaction that reads its jobs with a locking read, keeps those its lease token still owns
(running, same token), makes each job's new state with the rules of `core` and writes them
back in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asyncmy.cursors import Cursor

from taskyard.core.job import Job, JobStatus
from taskyard.core.settle import Settle, Settled

from .graph import after_finish
from .jobs import fetch_jobs, marks, save_many, server_now
from .rows import JOB_COLUMNS
from .schema import Tables

__all__ = ("settle_group",)

S = JobStatus


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
        after = outcome.applied_to(job, at)
        current[job.id] = after  # a second outcome for the same run is refused
        written.append(after)
        answers[index] = Settled(outcome.job_id, owned=True, job=after)
    await save_many(cur, t, written)
    woken = await after_finish(cur, t, written, at)
    return answers, woken | {j.queue for j in written if j.status is S.PENDING}
