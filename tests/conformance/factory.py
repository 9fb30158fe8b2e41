"""Building blocks for the conformance tests: a fixed start time, drafts and short-hands.

Every test passes explicit `now=` datetimes derived from `T0`, so no test depends on the
wall clock or sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from taskyard.backends.protocol import Backend
from taskyard.core.ids import new_id
from taskyard.core.job import AttemptError, Job, JobDraft
from taskyard.core.settle import Settle, Settled

#: A minute boundary well after every id's own timestamp would matter; rate windows align to it.
T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)

LEASE = 30.0


def at(seconds: float) -> datetime:
    """`T0` plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def draft(
    *,
    task: str = "t.noop",
    queue: str = "default",
    payload: Any = None,
    seq: int | None = None,
    **fields: Any,
) -> JobDraft:
    """A draft with a fresh id; `seq` makes ids sort in the given order (same millisecond)."""
    job_id = fields.pop("id", None)
    if job_id is None:
        ms = int(T0.timestamp() * 1000) + (seq if seq is not None else 0)
        job_id = new_id(ms)
    return JobDraft(id=job_id, task=task, queue=queue, payload=payload, **fields)


async def enqueue(backend: Backend, *, now: datetime = T0, **fields: Any) -> Job:
    """Enqueue one draft built from `fields`."""
    (job,) = await backend.job_enqueue_many(drafts=[draft(**fields)], now=now)
    return job


async def claim_one(
    backend: Backend,
    *,
    now: datetime = T0,
    queues: list[str] | None = None,
    worker_id: str = "w1",
    lease: float = LEASE,
) -> Job:
    """Claim exactly one job (fails the test otherwise)."""
    jobs = await backend.job_claim(
        queues=queues, limit=1, worker_id=worker_id, lease=lease, now=now
    )
    assert len(jobs) == 1, f"expected one claimable job, got {len(jobs)}"
    return jobs[0]


async def run_one(backend: Backend, *, now: datetime = T0, **fields: Any) -> Job:
    """Enqueue one job and claim it: returns the running job."""
    job = await enqueue(backend, now=now, **fields)
    claimed = await claim_one(backend, now=now, queues=[job.queue])
    assert claimed.id == job.id
    return claimed


async def settle(backend: Backend, outcome: Settle, *, now: datetime = T0) -> Settled:
    """Settle one outcome (`jobs_settle` with a batch of one); returns its answer."""
    (answer,) = await backend.jobs_settle(outcomes=[outcome], now=now)
    assert answer.job_id == outcome.job_id
    return answer


async def settled_job(backend: Backend, outcome: Settle, *, now: datetime = T0) -> Job:
    """Settle one outcome that must be owned; returns the job after the write."""
    answer = await settle(backend, outcome, now=now)
    assert answer.owned, f"{outcome.kind} of {outcome.job_id} was refused"
    if answer.job is not None:
        return answer.job
    stored = await backend.job_get(job_id=outcome.job_id)
    assert stored is not None
    return stored


async def complete(
    backend: Backend, job: Job, *, result: Any = None, now: datetime = T0
) -> list[str]:
    """Complete a running job with its own lease token; returns the refused ids."""
    assert job.lease_token is not None
    answer = await settle(backend, Settle.completed(job.id, job.lease_token, result), now=now)
    return [] if answer.owned else [job.id]


def error(attempt: int = 1, *, now: datetime = T0, message: str = "boom") -> AttemptError:
    """An attempt error as a worker would record it."""
    return AttemptError(
        attempt=attempt, type="ValueError", message=message, traceback="Traceback...", at=now
    )


async def job_in(backend: Backend, status: str) -> Job:
    """A fresh job in `status` (any `JobStatus` value), as the backend stores it: scheduled
    for `at(10)`, pending, running, or finished at `at(2)` from a run claimed at `T0`."""
    if status == "scheduled":
        return await enqueue(backend, run_at=at(10))
    if status in ("pending", "cancelled"):
        job = await enqueue(backend)
        if status == "cancelled":
            job = await backend.job_cancel(job_id=job.id, now=at(2))
        return job
    job = await run_one(backend)
    assert job.lease_token is not None
    if status == "completed":
        await complete(backend, job, now=at(2))
    elif status == "failed":
        await settled_job(backend, Settle.failed(job.id, job.lease_token, error(), None), now=at(2))
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status.value == status
    return stored
