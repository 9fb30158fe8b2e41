"""Leases: heartbeats extend them, and a stale lease token fences every worker write."""

from __future__ import annotations

import pytest

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobStatus, Progress
from taskyard.core.settle import Settle, Settled
from taskyard.errors import LeaseLost

from .factory import T0, at, claim_one, complete, enqueue, error, run_one, settle


async def test_extend_pushes_the_lease(backend: Backend) -> None:
    job = await run_one(backend)
    report = await backend.jobs_extend_leases(
        leases={job.id: job.lease_token}, lease=45, now=at(10)
    )
    assert report.lost == frozenset() and report.cancel_requested == frozenset()
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.lease_expires_at == at(55)
    # An extended lease is not expired at its old expiry.
    rescue = await backend.jobs_rescue_expired(now=at(40))
    assert rescue.rescued == () and rescue.failed == ()


async def test_extend_reports_lost_tokens(backend: Backend) -> None:
    mine = await run_one(backend, seq=0)
    other = await run_one(backend, seq=1)
    report = await backend.jobs_extend_leases(
        leases={
            mine.id: mine.lease_token,
            other.id: "not-the-token",
            "01UNKNOWN00000000000000000": "x",
        },
        lease=30,
        now=at(1),
    )
    assert report.lost == {other.id, "01UNKNOWN00000000000000000"}
    untouched = await backend.job_get(job_id=other.id)
    assert untouched is not None and untouched.lease_expires_at == other.lease_expires_at


async def test_extend_reports_finished_jobs_as_lost(backend: Backend) -> None:
    job = await run_one(backend)
    await complete(backend, job)
    report = await backend.jobs_extend_leases(leases={job.id: job.lease_token}, lease=30, now=at(1))
    assert report.lost == {job.id}


async def test_extend_reports_cancel_requested(backend: Backend) -> None:
    job = await run_one(backend)
    cancelled = await backend.job_cancel(job_id=job.id, now=at(1))
    assert cancelled.status is JobStatus.RUNNING and cancelled.cancel_requested
    report = await backend.jobs_extend_leases(leases={job.id: job.lease_token}, lease=30, now=at(2))
    assert report.cancel_requested == {job.id}
    assert report.lost == frozenset()


async def test_empty_heartbeat(backend: Backend) -> None:
    report = await backend.jobs_extend_leases(leases={}, lease=30, now=T0)
    assert report.lost == frozenset() and report.cancel_requested == frozenset()


async def test_progress_is_recorded(backend: Backend) -> None:
    job = await run_one(backend)
    await backend.job_set_progress(
        job_id=job.id,
        lease_token=job.lease_token,
        progress=Progress(40.0, "halfway-ish"),
        now=at(1),
    )
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.progress == Progress(40.0, "halfway-ish")
    await backend.job_set_progress(
        job_id=job.id, lease_token=job.lease_token, progress=Progress(90.0), now=at(2)
    )
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.progress == Progress(90.0, None)


async def test_progress_with_wrong_token_is_refused(backend: Backend) -> None:
    job = await run_one(backend)
    with pytest.raises(LeaseLost):
        await backend.job_set_progress(
            job_id=job.id, lease_token="stale", progress=Progress(1.0), now=at(1)
        )
    with pytest.raises(LeaseLost):
        await backend.job_set_progress(
            job_id="01UNKNOWN00000000000000000", lease_token="x", progress=Progress(1.0), now=at(1)
        )


async def _rescued_and_reclaimed(backend: Backend):  # type: ignore[no-untyped-def]
    """The first claim's lease expires; the job is rescued and claimed by a second worker."""
    await enqueue(backend, max_attempts=5)
    old = await claim_one(backend, worker_id="paused-worker", lease=10)
    report = await backend.jobs_rescue_expired(now=at(11))
    assert report.rescued == (old.id,)
    new = await claim_one(backend, now=at(12), worker_id="new-owner", lease=10)
    assert new.id == old.id and new.lease_token != old.lease_token
    return old, new


async def test_stale_token_cannot_complete(backend: Backend) -> None:
    old, _new = await _rescued_and_reclaimed(backend)
    assert old.lease_token is not None
    answer = await settle(backend, Settle.completed(old.id, old.lease_token, "stale"), now=at(13))
    assert answer == Settled(old.id, owned=False)
    stored = await backend.job_get(job_id=old.id)
    assert stored is not None
    assert stored.status is JobStatus.RUNNING and stored.worker_id == "new-owner"
    assert stored.result is None


async def test_stale_token_cannot_fail_snooze_cancel_or_progress(backend: Backend) -> None:
    old, new = await _rescued_and_reclaimed(backend)
    token = old.lease_token
    assert not (await settle(backend, Settle.failed(old.id, token, error(), None), now=at(13))).owned
    assert not (await settle(backend, Settle.failed(old.id, token, error(), at(99)), now=at(13))).owned
    assert not (await settle(backend, Settle.snoozed(old.id, token, at(99)), now=at(13))).owned
    assert not (await settle(backend, Settle.cancelled(old.id, token, "x"), now=at(13))).owned
    with pytest.raises(LeaseLost):
        await backend.job_set_progress(
            job_id=old.id, lease_token=token, progress=Progress(5.0), now=at(13)
        )
    report = await backend.jobs_extend_leases(leases={old.id: token}, lease=10, now=at(13))
    assert report.lost == {old.id}
    # A stale release is ignored, not an error, and changes nothing.
    await settle(backend, Settle.released(old.id, token), now=at(13))
    stored = await backend.job_get(job_id=old.id)
    assert stored is not None
    assert stored.status is JobStatus.RUNNING
    assert stored.lease_token == new.lease_token
    assert stored.lease_expires_at == new.lease_expires_at
    assert stored.progress is None
    # The new owner's writes still work.
    assert await complete(backend, new, result="fresh", now=at(14)) == []
    done = await backend.job_get(job_id=old.id)
    assert done is not None and done.status is JobStatus.COMPLETED and done.result == "fresh"


async def test_batch_complete_reports_only_the_refused_ids(backend: Backend) -> None:
    a = await run_one(backend, seq=0)
    b = await run_one(backend, seq=1)
    c = await run_one(backend, seq=2)
    assert a.lease_token is not None and c.lease_token is not None
    answers = await backend.jobs_settle(
        outcomes=[
            Settle.completed(a.id, a.lease_token, {"r": "a"}),
            Settle.completed(b.id, "wrong", "b"),
            Settle.completed(c.id, c.lease_token, ["c"]),
        ],
        now=at(1),
    )
    assert [(x.job_id, x.owned) for x in answers] == [(a.id, True), (b.id, False), (c.id, True)]
    sa, sb, sc = [await backend.job_get(job_id=j.id) for j in (a, b, c)]
    assert sa is not None and sa.status is JobStatus.COMPLETED and sa.result == {"r": "a"}
    assert sb is not None and sb.status is JobStatus.RUNNING
    assert sc is not None and sc.status is JobStatus.COMPLETED and sc.result == ["c"]


async def test_completing_twice_is_refused(backend: Backend) -> None:
    job = await run_one(backend)
    assert await complete(backend, job, result=1) == []
    assert await complete(backend, job, result=2) == [job.id]
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.result == 1


async def test_completion_stores_the_last_progress_it_carries(backend: Backend) -> None:
    job = await run_one(backend)
    assert job.lease_token is not None
    await backend.job_set_progress(
        job_id=job.id, lease_token=job.lease_token, progress=Progress(66.7, "two of three"), now=at(1)
    )
    final = Progress(100.0, "done")
    assert (await settle(backend, Settle.completed(job.id, job.lease_token, 3, final), now=at(2))).owned
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status is JobStatus.COMPLETED
    assert (stored.progress, stored.result) == (final, 3)


async def test_completion_without_progress_keeps_the_stored_one(backend: Backend) -> None:
    job = await run_one(backend)
    assert job.lease_token is not None
    await backend.job_set_progress(
        job_id=job.id, lease_token=job.lease_token, progress=Progress(40.0), now=at(1)
    )
    await complete(backend, job, now=at(2))
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.progress == Progress(40.0, None)
