"""Rescue of expired leases: a lost worker does not use the retry budget; a job that loses its
worker more than `max_rescues` times fails with a plain reason; rescues never happen twice."""

from __future__ import annotations

import asyncio

from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend
from taskyard.core.job import DEFAULT_MAX_RESCUES, JobStatus
from taskyard.core.settle import Settle

from .factory import T0, at, claim_one, enqueue, error, run_one, settle, settled_job


async def test_unexpired_lease_is_left_alone(backend: Backend) -> None:
    job = await run_one(backend)  # lease until at(30)
    report = await backend.jobs_rescue_expired(now=at(30))
    assert report.rescued == () and report.failed == ()
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING


async def test_rescued_default_task_goes_back_to_pending_with_its_attempt_not_consumed(
    backend: Backend,
) -> None:
    job = await run_one(backend)  # a task without retry=: max_attempts 1
    assert job.max_attempts == 1 and job.rescues == 0 and job.max_rescues == DEFAULT_MAX_RESCUES
    report = await backend.jobs_rescue_expired(now=at(31))
    assert report.rescued == (job.id,) and report.failed == ()
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None
    assert stored.status is JobStatus.PENDING
    assert stored.attempt == 0 and stored.rescues == 1
    assert stored.lease_token is None and stored.lease_expires_at is None and stored.worker_id is None
    assert stored.finished_at is None
    assert [e.type for e in stored.errors] == ["LeaseExpired"]
    assert stored.errors[0].attempt == 1 and stored.errors[0].at == at(31)
    again = await claim_one(backend, now=at(32))
    assert again.attempt == 1  # the same attempt runs again
    assert again.rescues == 1


async def test_a_rescue_leaves_the_retry_budget_alone(backend: Backend) -> None:
    job = await run_one(backend, max_attempts=2)
    await backend.jobs_rescue_expired(now=at(31))
    again = await claim_one(backend, now=at(32))
    assert again.attempt == 1
    assert again.lease_token is not None
    failed = await settled_job(backend, Settle.failed(job.id, again.lease_token, error(1), at(40)), now=at(33))
    assert failed.status is JobStatus.SCHEDULED  # attempt 1 of 2 failed: one retry left


async def test_worker_lost_more_than_max_rescues_fails_with_a_plain_reason(backend: Backend) -> None:
    job = await enqueue(backend, max_rescues=2)
    t = 0.0
    for round_ in range(1, 4):
        claimed = await claim_one(backend, now=at(t))
        assert claimed.attempt == 1
        t += 31
        report = await backend.jobs_rescue_expired(now=at(t))
        if round_ <= 2:
            assert report.rescued == (job.id,) and report.failed == ()
        else:
            assert report.failed == (job.id,) and report.rescued == ()
        t += 1
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None
    assert stored.status is JobStatus.FAILED
    assert stored.rescues == 3 and stored.attempt == 1
    assert stored.finished_at == at(t - 1)
    assert [e.type for e in stored.errors] == ["LeaseExpired"] * 3
    assert "its worker was lost 3 times" in stored.errors[-1].message
    assert "max_rescues=2" in stored.errors[-1].message
    assert await backend.job_claim(queues=None, limit=1, worker_id="w", lease=30, now=at(t)) == []


async def test_max_rescues_zero_fails_on_the_first_loss(backend: Backend) -> None:
    job = await run_one(backend, max_rescues=0)
    report = await backend.jobs_rescue_expired(now=at(31))
    assert report.failed == (job.id,)
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status is JobStatus.FAILED and stored.rescues == 1
    assert "its worker was lost 1 times" in stored.errors[-1].message


async def test_manual_retry_resets_rescues(backend: Backend) -> None:
    job = await run_one(backend, max_rescues=0)
    await backend.jobs_rescue_expired(now=at(31))
    retried = await backend.job_retry(job_id=job.id, now=at(32))
    assert retried.status is JobStatus.PENDING and retried.rescues == 0 and retried.attempt == 0
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.rescues == 0 and stored.max_rescues == 0
    again = await claim_one(backend, now=at(33))
    assert again.rescues == 0 and again.attempt == 1


async def test_a_write_with_the_rescued_lease_token_is_refused(backend: Backend) -> None:
    old = await run_one(backend)
    assert old.lease_token is not None
    await backend.jobs_rescue_expired(now=at(31))
    assert not (await settle(backend, Settle.completed(old.id, old.lease_token, "late"), now=at(32))).owned
    assert not (await settle(backend, Settle.failed(old.id, old.lease_token, error(1), None), now=at(32))).owned
    report = await backend.jobs_extend_leases(leases={old.id: old.lease_token}, lease=30, now=at(32))
    assert report.lost == {old.id}
    stored = await backend.job_get(job_id=old.id)
    assert stored is not None and stored.status is JobStatus.PENDING and stored.result is None


async def test_a_lease_renewed_before_the_rescue_is_kept(backend: Backend) -> None:
    job = await run_one(backend)
    assert job.lease_token is not None
    await backend.jobs_extend_leases(leases={job.id: job.lease_token}, lease=30, now=at(29))
    report = await backend.jobs_rescue_expired(now=at(31))
    assert report.rescued == () and report.failed == ()


async def test_two_rescuers_racing_rescue_once(backend: Backend) -> None:
    jobs = [await enqueue(backend, seq=i) for i in range(20)]
    claimed = await backend.job_claim(queues=None, limit=20, worker_id="dead", lease=10, now=T0)
    assert len(claimed) == 20
    # A second client of the same store where the store has one (separate connections).
    other = backend if backend.url.startswith("memory") else backend_from_url(backend.url)
    if other is not backend:
        await other.open()
    try:
        first, second = await asyncio.gather(
            backend.jobs_rescue_expired(now=at(11)), other.jobs_rescue_expired(now=at(11))
        )
    finally:
        if other is not backend:
            await other.close()
    ids = [*first.rescued, *second.rescued]
    assert sorted(ids) == sorted(j.id for j in jobs)  # every job exactly once
    assert first.failed == () and second.failed == ()
    for job in jobs:
        stored = await backend.job_get(job_id=job.id)
        assert stored is not None and stored.rescues == 1
        assert [e.type for e in stored.errors] == ["LeaseExpired"]


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
