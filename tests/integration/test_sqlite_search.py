"""SQLite searches when the trigram index runs out of time: a bounded scan of the newest jobs,
pages that may be short, and a listing that still neither repeats nor skips a job."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from taskyard.backends.protocol import Backend
from taskyard.backends.sqlite import SqliteBackend, search
from taskyard.core.job import JobFilter, JobStatus
from taskyard.core.settle import Settle
from tests.conformance.factory import T0, at, draft, enqueue, error, job_in, settle


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    store = SqliteBackend(f"sqlite:///{tmp_path / 'search.db'}")
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
    monkeypatch.setattr(search, "CHECK_STEPS", 1)  # at its first step, however short it is
    monkeypatch.setattr(search, "SCAN", 7)
    seen, sizes = await _listing(backend, JobFilter(q="wanted"), 3)
    assert seen == wanted
    assert len(sizes) > 3 and min(sizes) < 3  # bounded reads: short pages with a cursor
    only_pending, _ = await _listing(backend, JobFilter(q="wanted", status=JobStatus.PENDING), 2)
    assert only_pending == wanted
    assert (await _listing(backend, JobFilter(q="absent text"), 3))[0] == []


# -- the lazy index: a mark (`jobs_search_state.indexed`), catch-up in batches, guarded triggers


@pytest.fixture
def index_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches skip the window of newest jobs (read with LIKE, which needs no index): only
    the index answers, so a job it lacks is a job not found."""
    monkeypatch.setattr(search, "WINDOW", 0)


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "search.db", isolation_level=None)


def _bounds(tmp_path: Path) -> tuple[int, int]:
    """(the mark, the highest jobs rowid)."""
    with closing(_db(tmp_path)) as conn:
        return search.index_bounds(conn)


def _rowid(tmp_path: Path, job_id: str) -> int:
    with closing(_db(tmp_path)) as conn:
        return int(conn.execute("SELECT rowid FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])


def _check_index(tmp_path: Path) -> None:
    """FTS5's own check of the index; once it holds every job (mark = highest rowid), also
    against the jobs table (`rank` 1: each row indexed exactly as it is stored)."""
    with closing(_db(tmp_path)) as conn:
        conn.execute("INSERT INTO jobs_search (jobs_search) VALUES ('integrity-check')")
        mark, top = search.index_bounds(conn)
        if mark == top:
            conn.execute("INSERT INTO jobs_search (jobs_search, rank) VALUES ('integrity-check', 1)")


async def _found(backend: Backend, q: str) -> list[str]:
    return (await _listing(backend, JobFilter(q=q), 50))[0]


async def _found_set(backend: Backend, q: str) -> set[str]:
    """The jobs found, in a set: jobs made in the same millisecond sort by chance."""
    found = await _found(backend, q)
    assert len(found) == len(set(found))
    return set(found)


async def test_search_finds_jobs_stored_after_the_last_catch_up(
    backend: SqliteBackend, tmp_path: Path, index_only: None
) -> None:
    first = await enqueue(backend, seq=0, payload={"order": "ORD-first"})
    assert await _found(backend, "ORD-first") == [first.id]
    mark, top = _bounds(tmp_path)
    assert mark == top == _rowid(tmp_path, first.id)
    later = await enqueue(backend, seq=1, payload={"order": "ORD-later"})
    assert _bounds(tmp_path) == (mark, mark + 1)  # enqueue indexes nothing
    assert await _found(backend, "ORD-later") == [later.id]
    assert await _found(backend, "ORD-") == [later.id, first.id]
    _check_index(tmp_path)


async def test_changed_errors_and_payloads_are_found_on_indexed_and_unindexed_rows(
    backend: SqliteBackend, tmp_path: Path, index_only: None
) -> None:
    indexed = [await enqueue(backend, seq=i, payload={"n": f"old-{i}"}) for i in range(2)]
    assert await backend.search_catch_up() == 2
    unindexed = [await enqueue(backend, seq=i, payload={"n": f"old-{i}"}) for i in range(2, 4)]
    mark, top = _bounds(tmp_path)
    assert mark == _rowid(tmp_path, indexed[1].id) < top
    running = await backend.job_claim(queues=None, limit=4, worker_id="w", lease=30, now=T0)
    assert len(running) == 4
    for n, job in enumerate(running):  # two fail for good, two are scheduled to run again
        assert job.lease_token is not None
        again = at(60) if n % 2 else None
        outcome = Settle.failed(job.id, job.lease_token, error(message=f"SMTPTimeout-{job.id}"), again)
        await settle(backend, outcome, now=at(1))
    with closing(_db(tmp_path)) as conn:  # no write of taskyard changes these: the trigger
        for job in (indexed[0], unindexed[0]):  # still keeps them (its guard is the mark)
            conn.execute("UPDATE jobs SET payload = ? WHERE id = ?", (f'{{"n": "new-{job.id}"}}', job.id))
    assert _bounds(tmp_path) == (mark, top)
    _check_index(tmp_path)  # before the catch-up: only indexed rows were re-indexed
    for job in [*indexed, *unindexed]:
        assert await _found(backend, f"SMTPTimeout-{job.id}") == [job.id]
    for job in (indexed[0], unindexed[0]):
        assert await _found(backend, f"new-{job.id}") == [job.id]
    assert await _found(backend, "old-0") == []
    assert await _found(backend, "old-3") == [unindexed[1].id]
    assert _bounds(tmp_path) == (top, top)
    _check_index(tmp_path)


async def test_deleting_indexed_and_unindexed_rows_keeps_the_index_consistent(
    backend: SqliteBackend, tmp_path: Path, index_only: None
) -> None:
    a, b, c = [await job_in(backend, "completed") for _ in range(3)]
    assert await backend.search_catch_up() == 3
    d = await job_in(backend, "completed")
    e = await job_in(backend, "completed")
    assert _bounds(tmp_path) == (_rowid(tmp_path, c.id), _rowid(tmp_path, e.id))
    # An indexed row (the FTS5 'delete' runs) and an unindexed one (it must not).
    assert await backend.jobs_delete(ids=[a.id, d.id]) == [a.id, d.id]
    _check_index(tmp_path)
    # The top rows go, indexed (c) then not (e): the highest rowid left (b's) is below the
    # mark, so the mark comes down with it, or the next job, which SQLite gives c's rowid
    # again, would count as indexed and never be found.
    c_rowid = _rowid(tmp_path, c.id)
    assert await backend.jobs_delete(ids=[c.id]) == [c.id]
    assert _bounds(tmp_path) == (c_rowid, _rowid(tmp_path, e.id))
    assert await backend.jobs_delete(ids=[e.id]) == [e.id]
    assert _bounds(tmp_path) == (_rowid(tmp_path, b.id), _rowid(tmp_path, b.id))
    f = await enqueue(backend, seq=9, payload={"n": "after the deletes"})
    assert _rowid(tmp_path, f.id) == c_rowid
    assert await _found(backend, "after the deletes") == [f.id]
    done = await job_in(backend, "failed")  # an update and a delete of the re-used rowid
    assert await _found(backend, "boom") == [done.id]
    assert await backend.jobs_delete(ids=[f.id]) == []  # pending: not deleted
    _check_index(tmp_path)
    # Deletes in bulk (retention), rows on both sides of the mark.
    more = [await job_in(backend, "completed") for _ in range(4)]
    await backend.search_catch_up()
    more += [await job_in(backend, "completed") for _ in range(4)]
    assert await backend.jobs_prune(status=JobStatus.COMPLETED, keep_last=0) == 9
    _check_index(tmp_path)
    assert await _found_set(backend, "t.noop") == {done.id, f.id}
    _check_index(tmp_path)


async def test_catch_up_indexes_in_batches(
    backend: SqliteBackend, tmp_path: Path, index_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = await backend.job_enqueue_many(
        drafts=[draft(seq=i, payload={"order": f"ORD-{i:05d}"}) for i in range(12_000)], now=T0
    )
    batches: list[int] = []
    catch_up = search.catch_up

    def counted(conn: sqlite3.Connection, batch: int | None = None) -> tuple[int, int]:
        count, mark = catch_up(conn, batch)
        batches.append(count)
        return count, mark

    monkeypatch.setattr(search, "catch_up", counted)
    assert await backend.search_catch_up(batches=1) == 5000
    mark, top = _bounds(tmp_path)
    assert mark == _rowid(tmp_path, jobs[4999].id) and top == _rowid(tmp_path, jobs[-1].id)
    _check_index(tmp_path)
    assert await _found(backend, "ORD-11999") == [jobs[-1].id]  # the search catches up (2 batches at most)
    assert batches == [5000, 5000, 2000]
    assert _bounds(tmp_path) == (top, top)
    for i in (0, 4999, 5000, 9999, 10_000):
        assert await _found(backend, f"ORD-{i:05d}") == [jobs[i].id]
    assert await backend.search_catch_up() == 0
    assert batches == [5000, 5000, 2000]  # nothing to do: no write transaction
    _check_index(tmp_path)


async def test_maintenance_catches_up_a_few_batches_per_promotion(
    backend: SqliteBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "CATCH_UP_BATCH", 10)
    await backend.job_enqueue_many(drafts=[draft(seq=i) for i in range(55)], now=T0)
    assert await backend.jobs_promote_due(now=T0) == 0
    mark, top = _bounds(tmp_path)
    assert top - mark == 15  # 4 batches of 10 per call
    await backend.jobs_promote_due(now=T0)
    assert _bounds(tmp_path) == (top, top)
    _check_index(tmp_path)


async def test_reset_after_vacuum_indexes_every_job_again(
    backend: SqliteBackend, tmp_path: Path, index_only: None
) -> None:
    jobs = [await job_in(backend, "completed") for _ in range(6)]
    await backend.jobs_delete(ids=[j.id for j in jobs[:3]])
    await backend.search_catch_up()
    with closing(_db(tmp_path)) as conn:
        conn.execute("VACUUM")  # may renumber the rowids: the index must be built again
    await backend.search_reset()
    assert _bounds(tmp_path) == (0, _rowid(tmp_path, jobs[-1].id))
    assert await _found_set(backend, "t.noop") == {j.id for j in jobs[3:]}
    assert _bounds(tmp_path)[0] == _bounds(tmp_path)[1]
    _check_index(tmp_path)


async def test_a_search_reads_the_jobs_above_the_mark_by_their_rowids(
    backend: SqliteBackend, tmp_path: Path, index_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search indexes a few batches at most (a large load is left to maintenance); the jobs
    still above the mark are matched by a scan of their rowid range, so none is missed."""
    monkeypatch.setattr(search, "SEARCH_CATCH_UP_BATCHES", 0)
    monkeypatch.setattr(search, "SEARCH_CATCH_UP_ALL", 0)
    old = await enqueue(backend, seq=0, payload={"order": "ORD-old"})
    await backend.search_catch_up()
    new = await enqueue(backend, seq=1, payload={"order": "ORD-new"})
    mark, top = _bounds(tmp_path)
    assert mark == _rowid(tmp_path, old.id) < top == _rowid(tmp_path, new.id)
    assert await _found(backend, "ORD-new") == [new.id]
    assert await _found(backend, "ORD-") == [new.id, old.id]
    assert _bounds(tmp_path) == (mark, top)  # the search indexed nothing
    _check_index(tmp_path)
