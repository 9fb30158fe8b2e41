"""`jobs_settle` with `Settle.rescued`: the worker holding a job saw it lost (its child
process died) and rescues it at once, fenced by its lease token — the rescue rule of
expired leases, with a reason."""

from __future__ import annotations

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobStatus
from taskyard.core.settle import Settle

from .factory import at, claim_one, complete, enqueue, run_one, settle, settled_job

REASON = "the child process running it died (signal 11, SIGSEGV)"


async def test_a_held_job_goes_back_to_pending_before_its_lease_expires(backend: Backend) -> None:
    job = await run_one(backend, max_attempts=2)  # lease until at(30)
    assert job.lease_token is not None
    rescued = await settled_job(backend, Settle.rescued(job.id, job.lease_token, REASON), now=at(5))
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None
    for seen in (rescued, stored):
        assert seen.status is JobStatus.PENDING
        assert (seen.attempt, seen.rescues) == (0, 1)
        assert seen.lease_token is None and seen.lease_expires_at is None and seen.worker_id is None
        assert [e.type for e in seen.errors] == ["WorkerLost"]
        assert seen.errors[0].message.startswith(REASON)
        assert "rescued (1 of 3)" in seen.errors[0].message
        assert seen.errors[0].attempt == 1 and seen.errors[0].at == at(5)
    again = await claim_one(backend, now=at(6))
    assert (again.id, again.attempt, again.rescues) == (job.id, 1, 1)  # the same attempt again


async def test_past_max_rescues_the_job_fails_with_the_reason(backend: Backend) -> None:
    job = await enqueue(backend, max_rescues=1)
    for round_, t in enumerate((0, 10), start=1):
        claimed = await claim_one(backend, now=at(t))
        assert claimed.lease_token is not None
        after = await settled_job(backend, Settle.rescued(job.id, claimed.lease_token, REASON), now=at(t + 1))
        assert after.status is (JobStatus.PENDING if round_ == 1 else JobStatus.FAILED)
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None
    assert stored.status is JobStatus.FAILED
    assert (stored.attempt, stored.rescues) == (1, 2)
    assert stored.finished_at == at(11)
    assert stored.lease_token is None
    message = stored.errors[-1].message
    assert message.startswith("its worker was lost 2 times (max_rescues=1)")
    assert message.endswith(f"last time {REASON}")
    assert await backend.job_claim(queues=None, limit=1, worker_id="w", lease=30, now=at(12)) == []


async def test_another_token_is_refused_and_changes_nothing(backend: Backend) -> None:
    job = await run_one(backend)
    assert not (await settle(backend, Settle.rescued(job.id, "not-mine", REASON), now=at(1))).owned
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None
    assert stored.status is JobStatus.RUNNING and stored.rescues == 0 and stored.errors == ()
    assert stored.lease_token == job.lease_token


async def test_the_rescued_token_writes_nothing_more(backend: Backend) -> None:
    job = await run_one(backend)
    assert job.lease_token is not None
    await settled_job(backend, Settle.rescued(job.id, job.lease_token, REASON), now=at(1))
    assert not (await settle(backend, Settle.rescued(job.id, job.lease_token, REASON), now=at(2))).owned
    assert await complete(backend, job, now=at(2)) == [job.id]
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status is JobStatus.PENDING and stored.rescues == 1


async def test_a_finished_or_unknown_job_is_refused(backend: Backend) -> None:
    job = await run_one(backend)
    assert job.lease_token is not None
    await settled_job(backend, Settle.completed(job.id, job.lease_token, 1), now=at(1))
    assert not (await settle(backend, Settle.rescued(job.id, job.lease_token, REASON), now=at(2))).owned
    assert not (await settle(backend, Settle.rescued("nope", "x", REASON), now=at(2))).owned
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status is JobStatus.COMPLETED
