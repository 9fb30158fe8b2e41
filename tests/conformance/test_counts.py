"""Counts per queue and status, and the list of known queues."""

from __future__ import annotations

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobStatus
from taskyard.core.settle import Settle

from .factory import T0, at, complete, draft, enqueue, error, run_one, settled_job

S = JobStatus


async def test_counts_per_queue_and_status(backend: Backend) -> None:
    done = await run_one(backend, seq=0, queue="a")
    await complete(backend, done, now=at(1))
    bad = await run_one(backend, seq=1, queue="a")
    await settled_job(backend, Settle.failed(bad.id, bad.lease_token, error(), None), now=at(1))
    await run_one(backend, seq=2, queue="b")
    await backend.job_enqueue_many(
        drafts=[
            draft(seq=3, queue="a"),
            draft(seq=4, queue="a"),
            draft(seq=5, queue="b", run_at=at(60)),
        ],
        now=T0,
    )
    gone = await enqueue(backend, seq=6, queue="c")
    await backend.job_cancel(job_id=gone.id, now=at(1))
    counts = await backend.queue_counts()
    assert [c.queue for c in counts] == ["a", "b", "c"]
    by_queue = {c.queue: c for c in counts}
    a, b, c = by_queue["a"], by_queue["b"], by_queue["c"]
    assert (a.get(S.COMPLETED), a.get(S.FAILED), a.get(S.PENDING), a.get(S.RUNNING)) == (1, 1, 2, 0)
    assert (b.get(S.RUNNING), b.get(S.SCHEDULED), b.get(S.PENDING)) == (1, 1, 0)
    assert c.get(S.CANCELLED) == 1 and c.total == 1
    assert a.total == 4 and b.total == 2


async def test_counts_include_queues_with_settings_only(backend: Backend) -> None:
    await backend.queue_update(queue="idle", paused=True)
    counts = await backend.queue_counts()
    assert [c.queue for c in counts] == ["idle"]
    assert counts[0].total == 0


async def test_counts_empty(backend: Backend) -> None:
    assert await backend.queue_counts() == []


async def test_queues_list_has_queues_with_jobs_or_settings(backend: Backend) -> None:
    await enqueue(backend, seq=0, queue="zeta")
    await enqueue(backend, seq=1, queue="later", run_at=at(60))  # only scheduled jobs
    await backend.queue_update(queue="alpha", concurrency=3)
    listed = await backend.queues_list()
    assert [q.name for q in listed] == ["alpha", "later", "zeta"]
    assert listed[0].concurrency == 3
    assert (
        listed[2].paused is False and listed[2].concurrency is None and listed[2].rate_limit is None
    )
