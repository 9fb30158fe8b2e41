"""Claim: what becomes running, in which order, from which queues, and never twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobStatus

from .factory import LEASE, T0, at, claim_one, draft, enqueue


async def test_claim_sets_running_fields(backend: Backend) -> None:
    job = await enqueue(backend, max_attempts=3)
    claimed = await claim_one(backend, now=at(1), worker_id="worker-a", lease=20)
    assert claimed.id == job.id
    assert claimed.status is JobStatus.RUNNING
    assert claimed.attempt == 1
    assert claimed.started_at == at(1)
    assert claimed.worker_id == "worker-a"
    assert claimed.lease_token
    assert claimed.lease_expires_at == at(21)
    assert claimed.cancel_requested is False
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None
    assert stored.status is JobStatus.RUNNING
    assert stored.lease_token == claimed.lease_token
    assert stored.lease_expires_at == at(21)


async def test_claim_nothing_when_empty(backend: Backend) -> None:
    assert await backend.job_claim(queues=None, limit=10, worker_id="w", lease=LEASE, now=T0) == []
    assert (
        await backend.job_claim(queues=["nope"], limit=10, worker_id="w", lease=LEASE, now=T0) == []
    )


async def test_running_job_is_not_claimed_again(backend: Backend) -> None:
    await enqueue(backend)
    await claim_one(backend)
    assert (
        await backend.job_claim(queues=None, limit=5, worker_id="w2", lease=LEASE, now=at(1)) == []
    )


async def test_claim_respects_limit(backend: Backend) -> None:
    await backend.job_enqueue_many(drafts=[draft(seq=i) for i in range(7)], now=T0)
    first = await backend.job_claim(queues=None, limit=3, worker_id="w", lease=LEASE, now=T0)
    second = await backend.job_claim(queues=None, limit=10, worker_id="w", lease=LEASE, now=T0)
    assert len(first) == 3 and len(second) == 4
    assert not {j.id for j in first} & {j.id for j in second}


async def test_claim_order_priority_then_run_at_then_id(backend: Backend) -> None:
    drafts = [
        draft(seq=0, payload="low-early", priority=0, run_at=at(-30)),
        draft(seq=1, payload="high-late", priority=10, run_at=at(-1)),
        draft(seq=2, payload="high-early", priority=10, run_at=at(-20)),
        draft(seq=3, payload="mid", priority=5, run_at=at(-5)),
        draft(seq=5, payload="low-tie-b", priority=0, run_at=at(-10)),
        draft(seq=4, payload="low-tie-a", priority=0, run_at=at(-10)),
        draft(seq=6, payload="negative", priority=-3, run_at=at(-100)),
    ]
    await backend.job_enqueue_many(drafts=drafts, now=T0)
    claimed = await backend.job_claim(queues=None, limit=10, worker_id="w", lease=LEASE, now=T0)
    assert [j.payload for j in claimed] == [
        "high-early",
        "high-late",
        "mid",
        "low-early",
        "low-tie-a",
        "low-tie-b",
        "negative",
    ]


async def test_claim_order_one_at_a_time(backend: Backend) -> None:
    await backend.job_enqueue_many(
        drafts=[draft(seq=i, payload=i, priority=i % 3) for i in range(9)], now=T0
    )
    order = [(await claim_one(backend)).payload for _ in range(9)]
    assert order == [2, 5, 8, 1, 4, 7, 0, 3, 6]


async def test_claim_only_from_given_queues(backend: Backend) -> None:
    await backend.job_enqueue_many(
        drafts=[draft(seq=0, queue="a"), draft(seq=1, queue="b"), draft(seq=2, queue="c")], now=T0
    )
    claimed = await backend.job_claim(
        queues=["a", "c"], limit=10, worker_id="w", lease=LEASE, now=T0
    )
    assert sorted(j.queue for j in claimed) == ["a", "c"]
    rest = await backend.job_claim(queues=None, limit=10, worker_id="w", lease=LEASE, now=T0)
    assert [j.queue for j in rest] == ["b"]


async def test_claim_across_queues_follows_priority(backend: Backend) -> None:
    await backend.job_enqueue_many(
        drafts=[
            draft(seq=0, queue="a", priority=1, payload="a1"),
            draft(seq=1, queue="b", priority=3, payload="b3"),
            draft(seq=2, queue="a", priority=2, payload="a2"),
        ],
        now=T0,
    )
    claimed = await backend.job_claim(
        queues=["a", "b"], limit=3, worker_id="w", lease=LEASE, now=T0
    )
    assert [j.payload for j in claimed] == ["b3", "a2", "a1"]


async def test_future_scheduled_job_is_not_claimed(backend: Backend) -> None:
    await enqueue(backend, run_at=at(60))
    assert (
        await backend.job_claim(queues=None, limit=5, worker_id="w", lease=LEASE, now=at(59)) == []
    )


async def test_due_scheduled_job_is_claimed_without_promotion(backend: Backend) -> None:
    job = await enqueue(backend, run_at=at(60))
    claimed = await claim_one(backend, now=at(60))
    assert claimed.id == job.id
    assert claimed.status is JobStatus.RUNNING and claimed.attempt == 1


async def test_due_scheduled_job_ordered_by_run_at_with_pending(backend: Backend) -> None:
    late = await enqueue(backend, seq=0, now=T0)  # pending, run_at T0
    early = await enqueue(backend, seq=1, now=at(-50), run_at=at(-10))  # scheduled, due at T0
    claimed = await backend.job_claim(queues=None, limit=2, worker_id="w", lease=LEASE, now=T0)
    assert [j.id for j in claimed] == [early.id, late.id]


async def test_cancelled_job_is_not_claimed(backend: Backend) -> None:
    job = await enqueue(backend)
    await backend.job_cancel(job_id=job.id, now=T0)
    assert await backend.job_claim(queues=None, limit=5, worker_id="w", lease=LEASE, now=T0) == []


async def test_each_claim_gets_a_fresh_token(backend: Backend) -> None:
    await backend.job_enqueue_many(drafts=[draft(seq=i) for i in range(5)], now=T0)
    claimed = await backend.job_claim(queues=None, limit=5, worker_id="w", lease=LEASE, now=T0)
    tokens = {j.lease_token for j in claimed}
    assert len(tokens) == 5 and None not in tokens


async def test_concurrent_claimers_never_share_a_job(backend: Backend) -> None:
    n_jobs, n_claimers = 60, 8
    await backend.job_enqueue_many(drafts=[draft(seq=i) for i in range(n_jobs)], now=T0)

    async def claimer(k: int) -> list[str]:
        got: list[str] = []
        while True:
            jobs = await backend.job_claim(
                queues=None,
                limit=3,
                worker_id=f"w{k}",
                lease=LEASE,
                now=T0 + timedelta(microseconds=k),
            )
            if not jobs:
                return got
            got.extend(j.id for j in jobs)

    results = await asyncio.gather(*(claimer(k) for k in range(n_claimers)))
    flat = [job_id for got in results for job_id in got]
    assert len(flat) == n_jobs
    assert len(set(flat)) == n_jobs
