"""Enqueue: initial status, stored fields, idempotent ids, bulk order."""

from __future__ import annotations

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobFilter, JobStatus

from .factory import T0, at, draft, enqueue


async def test_enqueue_without_run_at_is_pending(backend: Backend) -> None:
    job = await enqueue(backend, now=T0)
    assert job.status is JobStatus.PENDING
    assert job.attempt == 0
    assert job.run_at == T0
    assert job.created_at == T0
    assert job.started_at is None and job.finished_at is None
    assert job.lease_token is None and job.worker_id is None


async def test_enqueue_with_past_or_present_run_at_is_pending(backend: Backend) -> None:
    past = await enqueue(backend, now=T0, run_at=at(-10))
    present = await enqueue(backend, now=T0, run_at=T0)
    assert past.status is JobStatus.PENDING and past.run_at == at(-10)
    assert present.status is JobStatus.PENDING


async def test_enqueue_with_future_run_at_is_scheduled(backend: Backend) -> None:
    job = await enqueue(backend, now=T0, run_at=at(60))
    assert job.status is JobStatus.SCHEDULED
    assert job.run_at == at(60)


async def test_all_fields_round_trip(backend: Backend) -> None:
    payload = {"watchlist_id": 7, "names": ["a", "b"], "nested": {"x": 1.5, "none": None}}
    d = draft(
        task="darkwatch.scan",
        queue="scans",
        payload=payload,
        priority=5,
        max_attempts=3,
        unique_key="watchlist:7",
        tags=("a", "b"),
        timeout=12.5,
    )
    (job,) = await backend.job_enqueue_many(drafts=[d], now=T0)
    stored = await backend.job_get(job_id=d.id)
    for seen in (job, stored):
        assert seen is not None
        assert seen.id == d.id
        assert seen.task == "darkwatch.scan"
        assert seen.queue == "scans"
        assert seen.payload == payload
        assert seen.priority == 5
        assert seen.max_attempts == 3
        assert seen.unique_key == "watchlist:7"
        assert seen.tags == ("a", "b")
        assert seen.timeout == 12.5
        assert seen.errors == ()
        assert seen.progress is None
        assert seen.result is None
        assert seen.cancel_requested is False


async def test_scalar_and_null_payloads_round_trip(backend: Backend) -> None:
    for payload in (None, 0, "text", [1, 2], True):
        job = await enqueue(backend, payload=payload)
        stored = await backend.job_get(job_id=job.id)
        assert stored is not None and stored.payload == payload


async def test_job_get_unknown_is_none(backend: Backend) -> None:
    assert await backend.job_get(job_id="01NOSUCHJOB000000000000000") is None


async def test_same_id_twice_returns_the_stored_job(backend: Backend) -> None:
    d = draft(payload={"v": 1})
    (first,) = await backend.job_enqueue_many(drafts=[d], now=T0)
    again = draft(id=d.id, payload={"v": 2}, queue="other")
    (second,) = await backend.job_enqueue_many(drafts=[again], now=at(5))
    assert second.id == first.id
    assert second.payload == {"v": 1}
    assert second.queue == "default"
    assert second.created_at == T0
    page = await backend.jobs_list(filter=JobFilter(), limit=10)
    assert [j.id for j in page.jobs] == [d.id]


async def test_same_id_twice_within_one_batch(backend: Backend) -> None:
    d = draft()
    jobs = await backend.job_enqueue_many(drafts=[d, draft(id=d.id, payload="dup")], now=T0)
    assert [j.id for j in jobs] == [d.id, d.id]
    assert jobs[1].payload is None


async def test_bulk_enqueue_returns_one_job_per_draft_in_order(backend: Backend) -> None:
    drafts = [draft(seq=i, payload={"i": i}, run_at=at(100) if i % 2 else None) for i in range(50)]
    jobs = await backend.job_enqueue_many(drafts=list(reversed(drafts)), now=T0)
    assert [j.id for j in jobs] == [d.id for d in reversed(drafts)]
    for job in jobs:
        i = job.payload["i"]
        assert job.status is (JobStatus.SCHEDULED if i % 2 else JobStatus.PENDING)


async def test_empty_bulk_enqueue(backend: Backend) -> None:
    assert await backend.job_enqueue_many(drafts=[], now=T0) == []


async def test_ids_already_stored_return_existing_jobs_in_a_mixed_batch(backend: Backend) -> None:
    old = await enqueue(backend, seq=0)
    new = draft(seq=1)
    jobs = await backend.job_enqueue_many(drafts=[new, draft(id=old.id)], now=at(1))
    assert [j.id for j in jobs] == [new.id, old.id]
    assert jobs[1].created_at == T0
