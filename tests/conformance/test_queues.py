"""Queue settings shared by every worker: pause, concurrency across claimers, rate limits."""

from __future__ import annotations

import asyncio

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobStatus
from taskyard.core.queue import QueueSettings, RateLimit
from taskyard.core.settle import Settle

from .factory import LEASE, T0, at, complete, draft, error, settled_job


async def _claim(backend: Backend, n: int = 100, *, queues=None, now=T0, worker="w"):  # type: ignore[no-untyped-def]
    return await backend.job_claim(queues=queues, limit=n, worker_id=worker, lease=LEASE, now=now)


async def test_defaults(backend: Backend) -> None:
    assert await backend.queue_get(queue="fresh") == QueueSettings(name="fresh")


async def test_update_returns_all_settings_and_unset_keeps(backend: Backend) -> None:
    s = await backend.queue_update(queue="q", concurrency=4)
    assert s == QueueSettings(name="q", concurrency=4)
    s = await backend.queue_update(queue="q", rate_limit=RateLimit(10, 60.0))
    assert s == QueueSettings(name="q", concurrency=4, rate_limit=RateLimit(10, 60.0))
    s = await backend.queue_update(queue="q", paused=True)
    assert s == QueueSettings(name="q", paused=True, concurrency=4, rate_limit=RateLimit(10, 60.0))
    s = await backend.queue_update(queue="q", concurrency=None, rate_limit=None)
    assert s == QueueSettings(name="q", paused=True)
    assert await backend.queue_get(queue="q") == s


async def test_paused_queue_is_not_claimed(backend: Backend) -> None:
    await backend.job_enqueue_many(
        drafts=[draft(seq=0, queue="p"), draft(seq=1, queue="o")], now=T0
    )
    await backend.queue_update(queue="p", paused=True)
    claimed = await _claim(backend)
    assert [j.queue for j in claimed] == ["o"]
    assert await _claim(backend, queues=["p"]) == []
    await backend.queue_update(queue="p", paused=False)
    assert [j.queue for j in await _claim(backend, queues=["p"])] == ["p"]


async def test_paused_queue_still_accepts_jobs(backend: Backend) -> None:
    await backend.queue_update(queue="p", paused=True)
    (job,) = await backend.job_enqueue_many(drafts=[draft(queue="p")], now=T0)
    assert job.status is JobStatus.PENDING


async def test_concurrency_limit(backend: Backend) -> None:
    await backend.queue_update(queue="c", concurrency=2)
    await backend.job_enqueue_many(drafts=[draft(seq=i, queue="c") for i in range(5)], now=T0)
    first = await _claim(backend)
    assert len(first) == 2
    assert await _claim(backend) == []
    assert await complete(backend, first[0], now=at(1)) == []
    second = await _claim(backend, now=at(1))
    assert len(second) == 1
    # A failure with a retry frees the slot, too.
    await settled_job(backend, Settle.failed(second[0].id, second[0].lease_token, error(), at(100)), now=at(2))
    assert len(await _claim(backend, now=at(2))) == 1


async def test_concurrency_limit_counts_jobs_running_before_it_was_set(backend: Backend) -> None:
    await backend.job_enqueue_many(drafts=[draft(seq=i, queue="c") for i in range(4)], now=T0)
    assert len(await _claim(backend, 2)) == 2
    await backend.queue_update(queue="c", concurrency=2)
    assert await _claim(backend) == []


async def test_concurrency_limit_holds_across_concurrent_claimers(backend: Backend) -> None:
    await backend.queue_update(queue="c", concurrency=3)
    await backend.job_enqueue_many(drafts=[draft(seq=i, queue="c") for i in range(20)], now=T0)
    results = await asyncio.gather(*(_claim(backend, 2, worker=f"w{k}") for k in range(6)))
    assert sum(len(r) for r in results) == 3


async def test_concurrency_limit_only_affects_its_queue(backend: Backend) -> None:
    await backend.queue_update(queue="c", concurrency=1)
    await backend.job_enqueue_many(
        drafts=[
            draft(seq=i, queue="c" if i < 3 else "free", priority=1 if i < 3 else 0)
            for i in range(6)
        ],
        now=T0,
    )
    claimed = await _claim(backend, 10)
    assert sorted(j.queue for j in claimed) == ["c", "free", "free", "free"]


async def test_rate_limit_fixed_windows(backend: Backend) -> None:
    # T0 is a minute boundary, so [T0, T0+60) is one window.
    await backend.queue_update(queue="r", rate_limit=RateLimit(limit=2, period=60.0))
    await backend.job_enqueue_many(drafts=[draft(seq=i, queue="r") for i in range(7)], now=T0)
    assert len(await _claim(backend, now=at(0))) == 2
    assert await _claim(backend, now=at(59)) == []
    second = await _claim(backend, 1, now=at(60))
    assert len(second) == 1
    # Completing jobs does not give starts back within the window.
    await complete(backend, second[0], now=at(61))
    assert len(await _claim(backend, now=at(61))) == 1
    assert await _claim(backend, now=at(119)) == []
    assert len(await _claim(backend, now=at(120))) == 2


async def test_rate_limit_across_concurrent_claimers(backend: Backend) -> None:
    await backend.queue_update(queue="r", rate_limit=RateLimit(limit=3, period=10.0))
    await backend.job_enqueue_many(drafts=[draft(seq=i, queue="r") for i in range(12)], now=T0)
    results = await asyncio.gather(
        *(_claim(backend, 2, now=at(1), worker=f"w{k}") for k in range(5))
    )
    assert sum(len(r) for r in results) == 3


async def test_rate_and_concurrency_together(backend: Backend) -> None:
    await backend.queue_update(
        queue="rc", concurrency=1, rate_limit=RateLimit(limit=5, period=60.0)
    )
    await backend.job_enqueue_many(drafts=[draft(seq=i, queue="rc") for i in range(5)], now=T0)
    first = await _claim(backend)
    assert len(first) == 1
    await complete(backend, first[0], now=at(1))
    assert len(await _claim(backend, now=at(2))) == 1
