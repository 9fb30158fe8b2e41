"""SQLite searches when the trigram index runs out of time: a bounded scan of the newest jobs,
pages that may be short, and a listing that still neither repeats nor skips a job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend
from taskyard.backends.sqlite import search
from taskyard.core.job import JobFilter, JobStatus
from tests.conformance.factory import T0, draft


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    store = backend_from_url(f"sqlite:///{tmp_path / 'search.db'}")
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


async def _listing(backend: Backend, f: JobFilter, limit: int) -> tuple[list[str], list[int]]:
    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    while True:
        page = await backend.jobs_list(filter=f, limit=limit, cursor=cursor)
        seen += [j.id for j in page.jobs]
        sizes.append(len(page.jobs))
        if page.next_cursor is None:
            return seen, sizes
        cursor = page.next_cursor


async def test_index_out_of_time_falls_back_to_a_bounded_scan(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    drafts = [draft(seq=i, payload={"tag": "wanted" if i % 5 == 0 else "other"}) for i in range(40)]
    jobs = await backend.job_enqueue_many(drafts=drafts, now=T0)
    wanted = [j.id for j in reversed(jobs) if j.payload["tag"] == "wanted"]
    # The index answers in time: full pages.
    assert (await _listing(backend, JobFilter(q="wanted"), 3))[0] == wanted

    monkeypatch.setattr(search, "WINDOW", 2)
    monkeypatch.setattr(search, "INDEX_SECONDS", 0.0)  # every index query is interrupted
    monkeypatch.setattr(search, "SCAN", 7)
    seen, sizes = await _listing(backend, JobFilter(q="wanted"), 3)
    assert seen == wanted
    assert len(sizes) > 3 and min(sizes) < 3  # bounded reads: short pages with a cursor
    only_pending, _ = await _listing(backend, JobFilter(q="wanted", status=JobStatus.PENDING), 2)
    assert only_pending == wanted
    assert (await _listing(backend, JobFilter(q="absent text"), 3))[0] == []
