"""Rescue of expired leases: the lost attempt counts; the last attempt ends failed."""

from __future__ import annotations

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobStatus

from .factory import T0, at, claim_one, enqueue, run_one


async def test_unexpired_lease_is_left_alone(backend: Backend) -> None:
    job = await run_one(backend)  # lease until at(30)
    report = await backend.jobs_rescue_expired(now=at(30))
    assert report.rescued == () and report.failed == ()
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING


async def test_expired_lease_goes_back_to_pending_with_an_error(backend: Backend) -> None:
    job = await run_one(backend, max_attempts=3)
    report = await backend.jobs_rescue_expired(now=at(31))
    assert report.rescued == (job.id,) and report.failed == ()
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None
    assert stored.status is JobStatus.PENDING
    assert stored.attempt == 1  # the lost attempt counts
    assert stored.lease_token is None and stored.lease_expires_at is None
    assert [e.type for e in stored.errors] == ["LeaseExpired"]
    assert stored.errors[0].attempt == 1 and stored.errors[0].at == at(31)
    again = await claim_one(backend, now=at(32))
    assert again.attempt == 2


async def test_expired_last_attempt_fails(backend: Backend) -> None:
    job = await run_one(backend, max_attempts=2)
    await backend.jobs_rescue_expired(now=at(31))
    second = await claim_one(backend, now=at(32))
    report = await backend.jobs_rescue_expired(now=at(63))
    assert report.failed == (second.id,) and report.rescued == ()
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None
    assert stored.status is JobStatus.FAILED
    assert stored.finished_at == at(63)
    assert stored.attempt == 2
    assert [e.type for e in stored.errors] == ["LeaseExpired", "LeaseExpired"]


async def test_rescue_only_touches_expired_running_jobs(backend: Backend) -> None:
    short = await enqueue(backend, seq=0, max_attempts=5)
    await claim_one(backend, lease=5)
    long = await enqueue(backend, seq=1, max_attempts=5)
    await claim_one(backend, lease=500)
    waiting = await enqueue(backend, seq=2)
    later = await enqueue(backend, seq=3, run_at=at(1))
    report = await backend.jobs_rescue_expired(now=at(100))
    assert report.rescued == (short.id,)
    statuses = {}
    for job in (long, waiting, later):
        stored = await backend.job_get(job_id=job.id)
        assert stored is not None
        statuses[job.id] = stored.status
    assert statuses == {
        long.id: JobStatus.RUNNING,
        waiting.id: JobStatus.PENDING,
        later.id: JobStatus.SCHEDULED,
    }


async def test_rescue_nothing(backend: Backend) -> None:
    report = await backend.jobs_rescue_expired(now=T0)
    assert report.rescued == () and report.failed == ()
