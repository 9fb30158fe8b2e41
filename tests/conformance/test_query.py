"""Listing jobs: filters, newest-first order and cursor pagination."""

from __future__ import annotations

import json
import sys
from typing import Any

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobFilter, JobStatus
from taskyard.core.payload import TOO_DEEP
from taskyard.http.api.schemas import JobOut

from .factory import T0, at, complete, draft, enqueue, run_one


async def test_list_newest_first(backend: Backend) -> None:
    jobs = await backend.job_enqueue_many(drafts=[draft(seq=i) for i in range(5)], now=T0)
    page = await backend.jobs_list(filter=JobFilter(), limit=50)
    assert [j.id for j in page.jobs] == [j.id for j in reversed(jobs)]
    assert page.next_cursor is None


async def test_pagination_never_repeats_or_skips(backend: Backend) -> None:
    jobs = await backend.job_enqueue_many(drafts=[draft(seq=i) for i in range(23)], now=T0)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await backend.jobs_list(filter=JobFilter(), limit=5, cursor=cursor)
        pages += 1
        assert len(page.jobs) <= 5
        seen.extend(j.id for j in page.jobs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        # Jobs added after the first page do not disturb the rest of the listing.
        if pages == 1:
            await enqueue(backend, seq=1000)
    assert seen == [j.id for j in reversed(jobs)]
    assert pages == 5


async def test_exact_multiple_has_no_empty_trailing_page(backend: Backend) -> None:
    await backend.job_enqueue_many(drafts=[draft(seq=i) for i in range(4)], now=T0)
    first = await backend.jobs_list(filter=JobFilter(), limit=2)
    second = await backend.jobs_list(filter=JobFilter(), limit=2, cursor=first.next_cursor)
    assert len(first.jobs) == 2 and first.next_cursor is not None
    assert len(second.jobs) == 2 and second.next_cursor is None


async def test_filters(backend: Backend) -> None:
    await backend.job_enqueue_many(
        drafts=[
            draft(seq=0, queue="a", task="t.x"),
            draft(seq=1, queue="a", task="t.y"),
            draft(seq=2, queue="b", task="t.x", run_at=at(100)),
        ],
        now=T0,
    )
    await enqueue(backend, seq=3, queue="b", task="t.y", now=at(50))
    running = await run_one(backend, seq=4, queue="c", task="t.x", now=at(60))

    async def ids(f: JobFilter) -> list[str]:
        return [j.id for j in (await backend.jobs_list(filter=f, limit=50)).jobs]

    assert len(await ids(JobFilter(queue="a"))) == 2
    assert len(await ids(JobFilter(task="t.x"))) == 3
    assert len(await ids(JobFilter(queue="b", task="t.x"))) == 1
    assert len(await ids(JobFilter(status=JobStatus.SCHEDULED))) == 1
    assert await ids(JobFilter(status=JobStatus.RUNNING)) == [running.id]
    assert len(await ids(JobFilter(status=JobStatus.PENDING))) == 3
    assert len(await ids(JobFilter(created_after=at(50)))) == 2  # inclusive
    assert len(await ids(JobFilter(created_before=at(50)))) == 3  # exclusive
    assert len(await ids(JobFilter(created_after=at(1), created_before=at(60)))) == 1
    assert await ids(JobFilter(queue="zzz")) == []


async def test_filtered_pagination(backend: Backend) -> None:
    drafts = [draft(seq=i, queue="even" if i % 2 == 0 else "odd") for i in range(12)]
    await backend.job_enqueue_many(drafts=drafts, now=T0)
    seen: list[str] = []
    cursor = None
    while True:
        page = await backend.jobs_list(filter=JobFilter(queue="odd"), limit=4, cursor=cursor)
        seen.extend(j.id for j in page.jobs)
        assert all(j.queue == "odd" for j in page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [d.id for d in reversed(drafts) if d.queue == "odd"]


async def test_rows_nested_past_the_limit_read_back_and_serialise(backend: Backend) -> None:
    # Rows written around the payload limit (core/payload.py), e.g. by an older version: the
    # payload and result are 1,000 levels deep, past Python's own JSON parser. Every read
    # answers, and what it returns serialises for the API.
    deep: Any = 1
    for _ in range(1000):
        deep = [deep]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # to encode them here
    try:
        job = await run_one(backend, task="t.deep", payload=deep)
        assert await complete(backend, job, result=deep) == []
    finally:
        sys.setrecursionlimit(limit)
    page = await backend.jobs_list(filter=JobFilter(task="t.deep"), limit=50)
    one = await backend.job_get(job_id=job.id)
    assert one is not None and [j.id for j in page.jobs] == [job.id]
    for read in (one, page.jobs[0]):
        out = json.loads(JobOut.of(read).model_dump_json())
        assert TOO_DEEP in json.dumps(out["payload"], ensure_ascii=False)
        assert TOO_DEEP in json.dumps(out["result"], ensure_ascii=False)
