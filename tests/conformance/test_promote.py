"""Promotion of due scheduled jobs to pending."""

from __future__ import annotations

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobStatus
from taskyard.core.settle import Settle

from .factory import T0, at, enqueue, settled_job


async def test_promote_moves_only_due_jobs(backend: Backend) -> None:
    due = await enqueue(backend, seq=0, run_at=at(10))
    exact = await enqueue(backend, seq=1, run_at=at(20))
    later = await enqueue(backend, seq=2, run_at=at(21))
    assert await backend.jobs_promote_due(now=at(5)) == 0
    assert await backend.jobs_promote_due(now=at(20)) == 2
    statuses = {}
    for job in (due, exact, later):
        stored = await backend.job_get(job_id=job.id)
        assert stored is not None
        statuses[job.id] = stored.status
    assert statuses == {
        due.id: JobStatus.PENDING,
        exact.id: JobStatus.PENDING,
        later.id: JobStatus.SCHEDULED,
    }
    promoted = await backend.job_get(job_id=due.id)
    assert promoted is not None and promoted.run_at == at(10) and promoted.attempt == 0
    assert await backend.jobs_promote_due(now=at(20)) == 0


async def test_promote_ignores_cancelled_scheduled_jobs(backend: Backend) -> None:
    job = await enqueue(backend, run_at=at(10))
    await backend.job_cancel(job_id=job.id, now=T0)
    assert await backend.jobs_promote_due(now=at(60)) == 0
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status is JobStatus.CANCELLED


async def test_promoted_retry_keeps_its_attempt(backend: Backend) -> None:
    from .factory import error, run_one

    job = await run_one(backend, max_attempts=3)
    await settled_job(backend, Settle.failed(job.id, job.lease_token, error(), at(30)), now=at(1))
    assert await backend.jobs_promote_due(now=at(30)) == 1
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status is JobStatus.PENDING and stored.attempt == 1
