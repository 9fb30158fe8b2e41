"""Claim: what becomes running, in which order, from which queues, and never twice."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from taskyard.backends.protocol import Backend
from taskyard.core.job import Job, JobStatus
from taskyard.core.queue import RateLimit

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


# -- the task filter: a worker claims only the tasks it knows ---------------------------------
async def _claim_tasks(
    backend: Backend, tasks: list[str], *, queues: list[str] | None = None, limit: int = 10,
    now: datetime = T0,
) -> list[Job]:
    return await backend.job_claim(
        queues=queues, limit=limit, worker_id="w", lease=LEASE, now=now, tasks=tasks
    )


async def test_claim_skips_jobs_of_other_tasks_and_leaves_them_unchanged(backend: Backend) -> None:
    drafts = [
        draft(seq=0, task="old.thumbnail", priority=5, payload="unknown-first"),
        draft(seq=1, task="old.thumbnail", payload="unknown"),
        draft(seq=2, task="new.resize", payload="known"),
    ]
    stored = await backend.job_enqueue_many(drafts=drafts, now=T0)
    claimed = await _claim_tasks(backend, ["new.resize"])
    assert [j.payload for j in claimed] == ["known"]
    for before in stored[:2]:
        after = await backend.job_get(job_id=before.id)
        assert after == before, "a skipped job must not change in any field"
    assert await _claim_tasks(backend, ["new.resize"]) == []
    rest = await backend.job_claim(queues=None, limit=10, worker_id="w2", lease=LEASE, now=T0)
    assert [j.payload for j in rest] == ["unknown-first", "unknown"]
    assert all(j.attempt == 1 for j in rest)


async def test_claim_filter_keeps_claim_order_behind_skipped_jobs(backend: Backend) -> None:
    drafts = [draft(seq=i, task="other", priority=9, payload=f"x{i}") for i in range(5)]
    drafts += [
        draft(seq=10, task="mine", priority=0, run_at=at(-10), payload="low-early"),
        draft(seq=11, task="mine", priority=3, payload="high"),
        draft(seq=12, task="also", priority=0, run_at=at(-20), payload="low-earlier"),
        draft(seq=13, task="other", priority=1, payload="x-mid"),
        draft(seq=14, task="mine", priority=0, run_at=at(-10), payload="low-early-tie"),
    ]
    await backend.job_enqueue_many(drafts=drafts, now=at(-30))
    first = await _claim_tasks(backend, ["mine", "also"], limit=2)
    second = await _claim_tasks(backend, ["mine", "also"], limit=10)
    assert [j.payload for j in first + second] == [
        "high", "low-earlier", "low-early", "low-early-tie",
    ]


async def test_claim_filter_includes_due_scheduled_jobs(backend: Backend) -> None:
    await enqueue(backend, seq=0, task="other", now=at(-50), run_at=at(-20))
    due = await enqueue(backend, seq=1, task="mine", now=at(-50), run_at=at(-10))
    await enqueue(backend, seq=2, task="mine", now=at(-50), run_at=at(10))
    claimed = await _claim_tasks(backend, ["mine"])
    assert [j.id for j in claimed] == [due.id]


async def test_claim_filter_across_queues_follows_priority(backend: Backend) -> None:
    await backend.job_enqueue_many(
        drafts=[
            draft(seq=0, queue="a", task="other", priority=9, payload="a-other"),
            draft(seq=1, queue="a", task="mine", priority=1, payload="a1"),
            draft(seq=2, queue="b", task="mine", priority=3, payload="b3"),
            draft(seq=3, queue="b", task="other", priority=8, payload="b-other"),
            draft(seq=4, queue="a", task="mine", priority=2, payload="a2"),
            draft(seq=5, queue="c", task="other", priority=7, payload="c-other"),
        ],
        now=T0,
    )
    claimed = await _claim_tasks(backend, ["mine"], queues=["a", "b", "c"], limit=10)
    assert [j.payload for j in claimed] == ["b3", "a2", "a1"]
    await backend.job_enqueue_many(
        drafts=[draft(seq=6, queue="c", task="mine", priority=0, payload="c0")], now=T0
    )
    assert [j.payload for j in await _claim_tasks(backend, ["mine"])] == ["c0"]


async def test_claim_with_no_tasks_claims_nothing(backend: Backend) -> None:
    job = await enqueue(backend)
    assert await _claim_tasks(backend, []) == []
    assert await backend.job_get(job_id=job.id) == job


async def test_claim_filter_respects_pause(backend: Backend) -> None:
    await enqueue(backend, seq=0, queue="p", task="mine")
    await backend.queue_update(queue="p", paused=True)
    assert await _claim_tasks(backend, ["mine"]) == []
    await backend.queue_update(queue="p", paused=False)
    assert len(await _claim_tasks(backend, ["mine"])) == 1


async def test_claim_filter_respects_concurrency(backend: Backend) -> None:
    await backend.queue_update(queue="c", concurrency=2)
    # A running job of another task counts towards the limit; skipped ones do not.
    await backend.job_enqueue_many(drafts=[draft(seq=0, queue="c", task="other")], now=T0)
    await claim_one(backend, queues=["c"])
    await backend.job_enqueue_many(
        drafts=[draft(seq=1 + i, queue="c", task="other") for i in range(3)]
        + [draft(seq=10 + i, queue="c", task="mine") for i in range(3)],
        now=T0,
    )
    claimed = await _claim_tasks(backend, ["mine"], queues=["c"])
    assert len(claimed) == 1 and claimed[0].task == "mine"
    assert await _claim_tasks(backend, ["mine"]) == []


async def test_claim_filter_respects_rate_limit(backend: Backend) -> None:
    await backend.queue_update(queue="r", rate_limit=RateLimit(2, 60.0))
    await backend.job_enqueue_many(
        drafts=[draft(seq=i, queue="r", task="other") for i in range(3)]
        + [draft(seq=10 + i, queue="r", task="mine") for i in range(4)],
        now=T0,
    )
    assert len(await _claim_tasks(backend, ["mine"], queues=["r"])) == 2
    assert await _claim_tasks(backend, ["mine"], now=at(30)) == []
    # Skipped jobs used none of the window: the next window starts afresh.
    assert len(await _claim_tasks(backend, ["mine"], now=at(60))) == 2
    others = await backend.job_claim(queues=None, limit=10, worker_id="w", lease=LEASE, now=at(61))
    assert others == [], "the window of at(60) is used up by the two above"


async def test_claim_filter_with_many_skipped_jobs_ahead(backend: Backend) -> None:
    await backend.job_enqueue_many(
        drafts=[draft(seq=i, task="other", priority=1) for i in range(300)], now=T0
    )
    mine = await enqueue(backend, seq=400, task="mine")
    claimed = await _claim_tasks(backend, ["mine"], limit=5)
    assert [j.id for j in claimed] == [mine.id]
    counts = {c.queue: c.get(JobStatus.PENDING) for c in await backend.queue_counts()}
    assert counts["default"] == 300
