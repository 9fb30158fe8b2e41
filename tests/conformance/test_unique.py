"""Uniqueness: one active (scheduled, pending or running) job per unique key."""

from __future__ import annotations

import pytest

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobStatus
from taskyard.core.settle import Settle
from taskyard.errors import InvalidTransitionError

from .factory import (
    T0,
    at,
    claim_one,
    complete,
    draft,
    enqueue,
    error,
    run_one,
    settle,
    settled_job,
)


@pytest.mark.parametrize("state", ["scheduled", "pending", "running"])
async def test_active_job_is_returned_instead_of_a_new_one(backend: Backend, state: str) -> None:
    if state == "scheduled":
        first = await enqueue(backend, seq=0, unique_key="k", run_at=at(60))
    elif state == "pending":
        first = await enqueue(backend, seq=0, unique_key="k")
    else:
        first = await run_one(backend, seq=0, unique_key="k")
    second = await enqueue(backend, seq=1, unique_key="k", payload="other", now=at(1))
    assert second.id == first.id
    assert second.status.value == state
    assert await backend.job_get(job_id=draft(seq=1).id) is None
    counts = await backend.queue_counts()
    assert sum(c.total for c in counts) == 1


@pytest.mark.parametrize("end", ["completed", "failed", "cancelled"])
async def test_finished_job_frees_the_key(backend: Backend, end: str) -> None:
    if end == "cancelled":
        first = await enqueue(backend, seq=0, unique_key="k")
        await backend.job_cancel(job_id=first.id, now=at(1))
    else:
        first = await run_one(backend, seq=0, unique_key="k")
        if end == "completed":
            await complete(backend, first, now=at(1))
        else:
            await settled_job(backend, Settle.failed(first.id, first.lease_token, error(), None), now=at(1))
    second = await enqueue(backend, seq=1, unique_key="k", now=at(2))
    assert second.id != first.id
    assert second.status is JobStatus.PENDING


async def test_retrying_job_keeps_the_key(backend: Backend) -> None:
    first = await run_one(backend, seq=0, unique_key="k", max_attempts=3)
    await settled_job(backend, Settle.failed(first.id, first.lease_token, error(), at(60)), now=at(1))
    second = await enqueue(backend, seq=1, unique_key="k", now=at(2))
    assert second.id == first.id and second.status is JobStatus.SCHEDULED


async def test_rescued_and_released_jobs_keep_the_key(backend: Backend) -> None:
    first = await run_one(backend, seq=0, unique_key="k", max_attempts=3)
    await backend.jobs_rescue_expired(now=at(100))
    assert (await enqueue(backend, seq=1, unique_key="k", now=at(101))).id == first.id
    again = await claim_one(backend, now=at(102))
    await settle(backend, Settle.released(again.id, again.lease_token), now=at(103))
    assert (await enqueue(backend, seq=2, unique_key="k", now=at(104))).id == first.id


async def test_duplicates_within_one_batch(backend: Backend) -> None:
    drafts = [
        draft(seq=0, unique_key="a", payload=0),
        draft(seq=1, unique_key="b", payload=1),
        draft(seq=2, unique_key="a", payload=2),
        draft(seq=3, payload=3),
        draft(seq=4, payload=4),
    ]
    jobs = await backend.job_enqueue_many(drafts=drafts, now=T0)
    assert [j.payload for j in jobs] == [0, 1, 0, 3, 4]
    assert jobs[0].id == jobs[2].id
    assert sum(c.total for c in await backend.queue_counts()) == 4


async def test_key_is_global_across_queues_and_tasks(backend: Backend) -> None:
    first = await enqueue(backend, seq=0, unique_key="k", queue="a", task="t.one")
    second = await enqueue(backend, seq=1, unique_key="k", queue="b", task="t.two")
    assert second.id == first.id


async def test_distinct_keys_and_no_key_are_independent(backend: Backend) -> None:
    a = await enqueue(backend, seq=0, unique_key="a")
    b = await enqueue(backend, seq=1, unique_key="b")
    n1 = await enqueue(backend, seq=2)
    n2 = await enqueue(backend, seq=3)
    assert len({a.id, b.id, n1.id, n2.id}) == 4


async def test_manual_retry_reclaims_a_free_key(backend: Backend) -> None:
    first = await run_one(backend, seq=0, unique_key="k")
    await settled_job(backend, Settle.failed(first.id, first.lease_token, error(), None), now=at(1))
    retried = await backend.job_retry(job_id=first.id, now=at(2))
    assert retried.status is JobStatus.PENDING
    assert (await enqueue(backend, seq=1, unique_key="k", now=at(3))).id == first.id


async def test_manual_retry_refused_while_another_job_holds_the_key(backend: Backend) -> None:
    first = await run_one(backend, seq=0, unique_key="k")
    await settled_job(backend, Settle.failed(first.id, first.lease_token, error(), None), now=at(1))
    holder = await enqueue(backend, seq=1, unique_key="k", now=at(2))
    assert holder.id != first.id
    with pytest.raises(InvalidTransitionError):
        await backend.job_retry(job_id=first.id, now=at(3))
    # The bulk retry skips it rather than failing as a whole.
    assert await backend.jobs_retry_failed(now=at(4)) == 0
    stored = await backend.job_get(job_id=first.id)
    assert stored is not None and stored.status is JobStatus.FAILED
