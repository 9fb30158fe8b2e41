"""Every backend carries out the job rules of `core/` and says what `errors.py` says.

The memory and SQLite backends call `cancelled_job` and `retried_job`; PostgreSQL (SQL) and
Redis (Lua) write the same fields themselves, atomically. These tests pin the stored job to
what the core rule makes of the job before, field by field, so SQL, Lua and Python cannot
drift apart.
"""

from __future__ import annotations

import pytest

from taskyard.backends.protocol import Backend
from taskyard.core.job import Job, JobStatus, Progress, cancelled_job, retried_job
from taskyard.core.queue import RateLimit, rate_window_start
from taskyard.core.settle import Settle
from taskyard.errors import InvalidTransitionError, LeaseLost

from .factory import LEASE, T0, at, claim_one, draft, enqueue, error, job_in, run_one, settled_job

S = JobStatus


async def _get(backend: Backend, job_id: str) -> Job:
    job = await backend.job_get(job_id=job_id)
    assert job is not None
    return job


async def _failed_after_a_rescue(backend: Backend) -> Job:
    """A failed job that was rescued once, reported progress and recorded two errors."""
    job = await run_one(backend, max_attempts=1, unique_key="k", tags=("a", "b"), timeout=9.0)
    report = await backend.jobs_rescue_expired(now=at(LEASE + 1))
    assert report.rescued == (job.id,)
    again = await claim_one(backend, now=at(LEASE + 2))
    assert again.lease_token is not None
    await backend.job_set_progress(
        job_id=job.id, lease_token=again.lease_token, progress=Progress(40.0, "part"),
        now=at(LEASE + 3),
    )
    await settled_job(backend, Settle.failed(job.id, again.lease_token, error(), None), now=at(LEASE + 4))
    failed = await _get(backend, job.id)
    assert failed.status is S.FAILED and failed.rescues == 1 and len(failed.errors) == 2
    return failed


async def _cancelled_while_running(backend: Backend) -> Job:
    """A job its handler stopped: it has a result and a cancel request."""
    job = await run_one(backend)
    assert job.lease_token is not None
    await backend.job_cancel(job_id=job.id, now=at(1))
    await settled_job(backend, Settle.cancelled(job.id, job.lease_token, "stop"), now=at(2))
    cancelled = await _get(backend, job.id)
    assert cancelled.status is S.CANCELLED and cancelled.result is not None
    return cancelled


@pytest.mark.parametrize("make", [_failed_after_a_rescue, _cancelled_while_running])
async def test_manual_retry_writes_what_retried_job_says(backend: Backend, make) -> None:  # type: ignore[no-untyped-def]
    before = await make(backend)
    when = at(LEASE + 10)
    expected = retried_job(before, when)
    assert await backend.job_retry(job_id=before.id, now=when) == expected
    assert await _get(backend, before.id) == expected


async def test_bulk_retry_writes_what_retried_job_says(backend: Backend) -> None:
    before = await _failed_after_a_rescue(backend)
    when = at(LEASE + 10)
    assert await backend.jobs_retry_failed(now=when) == 1
    assert await _get(backend, before.id) == retried_job(before, when)


@pytest.mark.parametrize("status", ["scheduled", "pending", "running", "cancelled"])
async def test_cancel_writes_what_cancelled_job_says(backend: Backend, status: str) -> None:
    before = await job_in(backend, status)
    expected = cancelled_job(before, at(3))
    assert await backend.job_cancel(job_id=before.id, now=at(3)) == expected
    assert await _get(backend, before.id) == expected


@pytest.mark.parametrize("status", ["completed", "failed"])
async def test_cancel_refusal_says_what_errors_says(backend: Backend, status: str) -> None:
    job = await job_in(backend, status)
    with pytest.raises(InvalidTransitionError) as info:
        await backend.job_cancel(job_id=job.id, now=at(2))
    assert str(info.value) == str(InvalidTransitionError.not_cancellable(job.id, status))


async def test_retry_refusal_says_what_errors_says(backend: Backend) -> None:
    job = await enqueue(backend)
    with pytest.raises(InvalidTransitionError) as info:
        await backend.job_retry(job_id=job.id, now=at(1))
    assert str(info.value) == str(InvalidTransitionError.not_retryable(job.id, "pending"))


async def test_unique_key_refusal_names_the_holder(backend: Backend) -> None:
    first = await run_one(backend, seq=0, unique_key="k")
    assert first.lease_token is not None
    await settled_job(backend, Settle.failed(first.id, first.lease_token, error(), None), now=at(1))
    holder = await enqueue(backend, seq=1, unique_key="k", now=at(2))
    with pytest.raises(InvalidTransitionError) as info:
        await backend.job_retry(job_id=first.id, now=at(3))
    assert str(info.value) == str(InvalidTransitionError.unique_key_held(first.id, "k", holder.id))


async def test_lease_lost_says_what_errors_says(backend: Backend) -> None:
    job = await enqueue(backend, now=T0)
    with pytest.raises(LeaseLost) as info:
        await backend.job_set_progress(
            job_id=job.id, lease_token="not-mine", progress=Progress(1.0), now=at(1)
        )
    assert str(info.value) == str(LeaseLost.of_job(job.id))


@pytest.mark.parametrize("status", [S.SCHEDULED, S.PENDING, S.RUNNING])
async def test_prune_refusal_says_what_core_says(backend: Backend, status: JobStatus) -> None:
    with pytest.raises(ValueError) as info:
        await backend.jobs_prune(status=status, keep_last=0)
    assert str(info.value) == f"only finished jobs can be pruned, not {status.value!r}"


async def test_rate_windows_are_the_ones_rate_window_start_says(backend: Backend) -> None:
    # A period that does not divide a minute: windows start at its multiples since the epoch.
    period = 11.0
    start = rate_window_start(at(1).timestamp(), period)
    boundary = start + period - T0.timestamp()  # seconds after T0 the next window opens
    await backend.queue_update(queue="r", rate_limit=RateLimit(limit=1, period=period))
    await backend.job_enqueue_many(drafts=[draft(seq=i, queue="r") for i in range(3)], now=T0)

    async def claims(seconds: float) -> int:
        return len(await backend.job_claim(
            queues=["r"], limit=3, worker_id="w1", lease=LEASE, now=at(seconds)
        ))

    assert await claims(boundary - 0.5) == 1
    assert await claims(boundary - 0.001) == 0
    assert await claims(boundary) == 1
