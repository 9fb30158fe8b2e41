"""Redis-only behaviour: several backend instances (as several processes would have) sharing
one server — wake-ups, exclusive claims, limits and unique keys across instances — plus the
key layout (prefix isolation, one hash slot per queue) and error conversion.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend
from taskyard.core.ids import new_id
from taskyard.core.job import JobDraft, JobFilter, JobStatus
from taskyard.core.schedule import Schedule
from taskyard.core.settle import Settle
from taskyard.errors import BackendUnavailable, ConfigError
from tests.support.backends import opened_backend as opened
from tests.support.redis import free_port, isolated_url
from tests.support.servers import REDIS_URL

T0 = datetime(2026, 11, 22, 12, tzinfo=UTC)


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with isolated_url() as value:
        yield value


def drafts(n: int, queue: str = "q", task: str = "t", **kw: object) -> list[JobDraft]:
    return [JobDraft(id=new_id(), task=task, queue=queue, payload={"i": i}, **kw) for i in range(n)]  # type: ignore[arg-type]


async def test_enqueue_from_another_instance_wakes_a_waiter(url: str) -> None:
    async with opened(url) as worker, opened(url) as client:
        # The first wait only establishes the subscription (it may return early by contract).
        await worker.wait_for_jobs(queues=["q"], timeout=10)
        waiter = asyncio.create_task(worker.wait_for_jobs(queues=["q"], timeout=60))
        other = asyncio.create_task(worker.wait_for_jobs(queues=["elsewhere"], timeout=60))
        try:
            while not waiter.done():
                await client.job_enqueue_many(drafts=drafts(1))
                await asyncio.wait((waiter,), timeout=0.5)
            # A wake-up for queue q leaves a waiter on another queue asleep.
            assert not other.done()
        finally:
            waiter.cancel()
            other.cancel()


async def test_wake_up_survives_reopen(url: str) -> None:
    async with opened(url) as worker, opened(url) as client:
        await worker.wait_for_jobs(queues=None, timeout=10)
        await worker.close()
        await worker.open()
        await worker.wait_for_jobs(queues=None, timeout=10)
        waiter = asyncio.create_task(worker.wait_for_jobs(queues=None, timeout=60))
        try:
            while not waiter.done():
                await client.queue_update(queue="q", paused=False)
                await asyncio.wait((waiter,), timeout=0.5)
        finally:
            waiter.cancel()


async def test_concurrent_claimers_never_share_a_job(url: str) -> None:
    async with opened(url) as seed:
        await seed.job_enqueue_many(drafts=drafts(300) + drafts(100, queue="r"))
    instances = [backend_from_url(url) for _ in range(4)]
    for b in instances:
        await b.open()
    try:
        claimed: list[str] = []

        async def drain(b: Backend, name: str) -> None:
            while jobs := await b.job_claim(queues=None, limit=7, worker_id=name, lease=60):
                claimed.extend(j.id for j in jobs)
                answers = await b.jobs_settle(
                    outcomes=[Settle.completed(j.id, j.lease_token or "") for j in jobs],
                )
                refused = [x.job_id for x in answers if not x.owned]
                assert refused == []

        await asyncio.gather(*(drain(b, f"w{i}") for i, b in enumerate(instances)))
        assert len(claimed) == 400
        assert len(set(claimed)) == 400
        counts = {c.queue: c.counts for c in await instances[0].queue_counts()}
        assert counts == {"q": {JobStatus.COMPLETED: 300}, "r": {JobStatus.COMPLETED: 100}}
    finally:
        for b in instances:
            await b.close()


async def test_concurrency_limit_holds_across_instances(url: str) -> None:
    async with opened(url) as a, opened(url) as b:
        await a.queue_update(queue="q", concurrency=3)
        await a.job_enqueue_many(drafts=drafts(10))
        got = await asyncio.gather(
            *(x.job_claim(queues=["q"], limit=10, worker_id="w", lease=60) for x in (a, b, a, b))
        )
        assert sum(len(g) for g in got) == 3


async def test_unique_key_races_make_one_job(url: str) -> None:
    instances = [backend_from_url(url) for _ in range(4)]
    for b in instances:
        await b.open()
    try:
        results = await asyncio.gather(
            *(
                b.job_enqueue_many(drafts=drafts(1, queue=f"q{i % 2}", unique_key="only-one"))
                for i, b in enumerate(instances)
                for _ in range(5)
            )
        )
        ids = {jobs[0].id for jobs in results}
        assert len(ids) == 1
        counts = await instances[0].queue_counts()
        assert sum(c.total for c in counts) == 1
    finally:
        for b in instances:
            await b.close()


async def test_unique_key_of_a_crashed_enqueue_is_free_after_the_grace(url: str) -> None:
    async with opened(url) as b:
        # A reservation whose job never got written (the enqueuing process died in between).
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            prefix = b.prefix  # type: ignore[attr-defined]
            await client.hset(f"{prefix}{{g}}:unique", "k", "1:GHOST")
        finally:
            await client.aclose()
        job = (await b.job_enqueue_many(drafts=drafts(1, unique_key="k")))[0]
        assert job.status is JobStatus.PENDING
        assert (await b.job_get(job_id=job.id)) == job


async def test_keys_stay_under_the_prefix_and_one_slot_per_queue(url: str) -> None:
    async with opened(url) as b:
        jobs = await b.job_enqueue_many(drafts=drafts(3) + drafts(2, queue="r", unique_key="u"))
        claimed = await b.job_claim(queues=None, limit=5, worker_id="w", lease=60)
        await b.jobs_settle(
            outcomes=[Settle.completed(j.id, j.lease_token or "") for j in claimed],
        )
        await b.queue_update(queue="q", paused=True)
        prefix = b.prefix  # type: ignore[attr-defined]
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            keys = [k async for k in client.scan_iter(match=prefix + "*")]
        finally:
            await client.aclose()
        assert len(keys) > 5
        for key in keys:
            assert key.startswith(prefix)
            tag = key[len(prefix) :].split("}", 1)[0].lstrip("{")
            assert tag in ("g", "q:q", "q:r"), key
            assert key_slot(key.encode()) == key_slot(tag.encode())
        assert {j.id for j in jobs} == {j.id for j in claimed}


async def test_unreachable_server_raises_backend_unavailable() -> None:
    backend = backend_from_url(f"redis://127.0.0.1:{free_port()}/0?prefix=ty:none:")
    with pytest.raises(BackendUnavailable):
        await backend.open()
    with pytest.raises(BackendUnavailable):
        await backend.job_enqueue_many(drafts=drafts(1))
    # Waiting for work while the server is down is a poll timeout, not an error.
    await backend.wait_for_jobs(queues=None, timeout=0.05)
    await backend.close()


def test_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ConfigError, match="prefix"):
        backend_from_url("redis://127.0.0.1/0?prefix=a{b}:")


def test_url_keeps_the_prefix_for_a_second_instance() -> None:
    first = backend_from_url("redis://127.0.0.1:6379/3?prefix=app1:&socket_keepalive=true")
    second = backend_from_url(first.url)
    assert second.prefix == "app1:"  # type: ignore[attr-defined]


async def test_listing_a_rare_status_pages_through_its_own_index(url: str) -> None:
    async with opened(url) as b:
        await b.job_enqueue_many(drafts=drafts(60))
        claimed = await b.job_claim(queues=["q"], limit=5, worker_id="w", lease=60)
        seen: list[str] = []
        cursor = None
        while True:
            page = await b.jobs_list(
                filter=JobFilter(status=JobStatus.RUNNING), limit=2, cursor=cursor
            )
            seen += [j.id for j in page.jobs]
            if (cursor := page.next_cursor) is None:
                break
        assert seen == sorted((j.id for j in claimed), reverse=True)


async def test_declared_schedules_stored_before_the_upgrade_are_confirmed_and_expired(url: str) -> None:
    """Schedule hashes written before declarations were confirmed (no `conf` field, not in the
    `scheds:declared` index) are recognised by their document."""
    async with opened(url) as b:
        prefix = b.prefix  # type: ignore[attr-defined]
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            for name, source in (("declared", "code"), ("orphan", "code"), ("runtime", "api")):
                doc = Schedule(name=name, task="t", every=60.0, source=source).to_json()
                for key in ("declarer", "declarer_started_at", "confirmed_at"):
                    del doc[key]  # as an older taskyard wrote it
                await client.hset(f"{prefix}{{g}}:sched:{name}", mapping={
                    "doc": json.dumps(doc), "last": "", "next": "", "enabled": "1", "owner": "",
                })
                await client.sadd(f"{prefix}{{g}}:scheds", name)
        finally:
            await client.aclose()
        assert await b.schedules_confirm(names=["declared", "runtime"], now=T0) == 1
        assert await b.schedules_expire_declared(grace=300, now=T0) == []  # orphan's grace starts
        orphan = await b.schedule_get(name="orphan")
        assert orphan is not None and orphan.confirmed_at == T0
        later = T0 + timedelta(seconds=301)
        assert await b.schedules_confirm(names=["declared"], now=later) == 1
        assert await b.schedules_expire_declared(grace=300, now=later) == ["orphan"]
        assert [s.name for s in await b.schedules_list()] == ["declared", "runtime"]


async def test_a_filtered_claim_looks_past_a_bounded_number_of_unknown_jobs(url: str) -> None:
    from taskyard.backends.redis.claims import SKIP_SCAN_CAP

    async with opened(url) as backend:
        await backend.job_enqueue_many(drafts=drafts(SKIP_SCAN_CAP - 1, task="other", priority=1))
        await backend.job_enqueue_many(drafts=drafts(1, task="mine"))
        (job,) = await backend.job_claim(queues=None, limit=5, worker_id="w", lease=60, tasks=["mine"])
        assert job.task == "mine"
        # Two more unknown jobs ahead: the next job of "mine" is now beyond the bound.
        await backend.job_enqueue_many(drafts=drafts(2, task="other", priority=1))
        await backend.job_enqueue_many(drafts=drafts(1, task="mine"))
        assert await backend.job_claim(queues=None, limit=5, worker_id="w", lease=60, tasks=["mine"]) == []
        # Once the unknown jobs are claimed by a worker that knows them, it is reached.
        others = await backend.job_claim(queues=None, limit=2000, worker_id="w2", lease=60, tasks=["other"])
        assert len(others) == SKIP_SCAN_CAP + 1
        (job,) = await backend.job_claim(queues=None, limit=5, worker_id="w", lease=60, tasks=["mine"])
        assert job.task == "mine"
