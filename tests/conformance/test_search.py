"""Searching jobs (`JobFilter.q`) and deleting finished ones (`jobs_delete`)."""

from __future__ import annotations

import pytest

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobFilter, JobStatus
from taskyard.core.settle import Settle

from .factory import T0, at, draft, enqueue, error, job_in, run_one, settled_job


async def _ids(backend: Backend, f: JobFilter, limit: int = 100) -> list[str]:
    """Every id the listing gives, page after page (a search may answer short pages)."""
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await backend.jobs_list(filter=f, limit=limit, cursor=cursor)
        seen += [j.id for j in page.jobs]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
    raise AssertionError("the listing never ended")


async def test_search_matches_each_searched_field(backend: Backend) -> None:
    plain = await enqueue(backend, seq=0, task="mail.send", queue="mailer",
                          payload={"to": "alice@example.com", "n": 1})
    keyed = await enqueue(backend, seq=1, task="report.build", unique_key="report-2026-11")
    other = await enqueue(backend, seq=2, task="t.noop", payload={"to": "bob@example.org"})
    running = await run_one(backend, seq=3, task="t.flaky", queue="flaky")
    assert running.lease_token is not None
    failed = await settled_job(
        backend,
        Settle.failed(running.id, running.lease_token, error(message="SMTPTimeout talking to relay"), None),
        now=at(1),
    )

    assert await _ids(backend, JobFilter(q="alice@example")) == [plain.id]
    assert await _ids(backend, JobFilter(q="ALICE@EXAMPLE")) == [plain.id]  # any case
    assert await _ids(backend, JobFilter(q="mail.send")) == [plain.id]  # task
    assert await _ids(backend, JobFilter(q="mailer")) == [plain.id]  # queue
    assert await _ids(backend, JobFilter(q="report-2026")) == [keyed.id]  # unique key
    assert await _ids(backend, JobFilter(q="smtptimeout")) == [failed.id]  # error text
    assert await _ids(backend, JobFilter(q=other.id)) == [other.id]  # the whole id
    assert await _ids(backend, JobFilter(q=other.id[-12:].lower())) == [other.id]  # part of it
    assert await _ids(backend, JobFilter(q="example")) == [other.id, plain.id]
    assert await _ids(backend, JobFilter(q="no such text anywhere")) == []


async def test_search_combines_with_filters(backend: Backend) -> None:
    a = await enqueue(backend, seq=0, queue="a", payload={"customer": "acme"})
    await enqueue(backend, seq=1, queue="b", payload={"customer": "acme"})
    await enqueue(backend, seq=2, queue="a", payload={"customer": "globex"})
    scheduled = await enqueue(backend, seq=3, queue="a", payload={"customer": "acme"}, run_at=at(100))
    assert await _ids(backend, JobFilter(q="acme", queue="a")) == [scheduled.id, a.id]
    assert await _ids(backend, JobFilter(q="acme", queue="a", status=JobStatus.PENDING)) == [a.id]
    assert await _ids(backend, JobFilter(q="acme", task="t.other")) == []


async def test_search_text_is_literal(backend: Backend) -> None:
    """LIKE wildcards and full-text syntax in the text match themselves only."""
    percent = await enqueue(backend, seq=0, payload={"note": "100% done_now"})
    await enqueue(backend, seq=1, payload={"note": "100 X doneXnow"})
    syntax = await enqueue(backend, seq=2, payload={"note": "say hi OR NOT* (x)"})
    quoted = await enqueue(backend, seq=3, unique_key='say "hi"')  # a key is stored as it is
    assert await _ids(backend, JobFilter(q="100%")) == [percent.id]
    assert await _ids(backend, JobFilter(q="done_now")) == [percent.id]
    assert await _ids(backend, JobFilter(q="OR NOT* (x")) == [syntax.id]
    assert await _ids(backend, JobFilter(q='"hi"')) == [quoted.id]
    assert await _ids(backend, JobFilter(q="%")) == [percent.id]  # short text: a scan


async def test_search_pages_never_repeat_or_skip(backend: Backend) -> None:
    if hasattr(backend, "search_budget"):
        backend.search_budget = 4  # Redis: a search reads a bounded number of jobs per call
    drafts = [draft(seq=i, payload={"batch": "wanted" if i % 3 == 0 else "other"}) for i in range(30)]
    jobs = await backend.job_enqueue_many(drafts=drafts, now=T0)
    wanted = [j.id for j in reversed(jobs) if j.payload["batch"] == "wanted"]
    assert await _ids(backend, JobFilter(q="wanted"), limit=3) == wanted


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
async def test_delete_removes_finished_jobs(backend: Backend, status: str) -> None:
    job = await job_in(backend, status)
    keep = await enqueue(backend, seq=9)
    assert await backend.jobs_delete(ids=[job.id]) == [job.id]
    assert await backend.job_get(job_id=job.id) is None
    assert await _ids(backend, JobFilter()) == [keep.id]
    assert await _ids(backend, JobFilter(status=JobStatus(status))) == []
    assert await backend.jobs_delete(ids=[job.id]) == []  # already gone


@pytest.mark.parametrize("status", ["scheduled", "pending", "running"])
async def test_delete_leaves_active_jobs(backend: Backend, status: str) -> None:
    job = await job_in(backend, status)
    assert await backend.jobs_delete(ids=[job.id, "0" * 26]) == []
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status.value == status


async def test_deleted_running_job_still_settles(backend: Backend) -> None:
    """A running job is refused, so its worker's settle still lands."""
    job = await run_one(backend)
    assert job.lease_token is not None
    assert await backend.jobs_delete(ids=[job.id]) == []
    done = await settled_job(backend, Settle.completed(job.id, job.lease_token, 7), now=at(1))
    assert done.status is JobStatus.COMPLETED
    assert await backend.jobs_delete(ids=[job.id]) == [job.id]


async def test_delete_frees_the_search_index(backend: Backend) -> None:
    job = await job_in(backend, "completed")
    await backend.job_enqueue_many(drafts=[draft(seq=5, payload="needle-in-haystack")], now=T0)
    before = await _ids(backend, JobFilter(q="needle"))
    assert len(before) == 1
    await backend.jobs_delete(ids=[job.id, before[0]])  # the pending one stays
    assert await _ids(backend, JobFilter(q="needle")) == before
    assert await _ids(backend, JobFilter(q=job.id)) == []
