"""Searching the SQLite store's jobs (`JobFilter.q`): a window of the newest jobs first, then
the trigram index `jobs_search` (schema migration 4) under a time limit, then a bounded scan;
and the index's lazy upkeep (`catch_up` of the jobs enqueued since, `reset` after a VACUUM)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskyard.core.job import JobPage

from .rows import JOB_COLUMNS, job_from_row
from .schema import SEARCHED_COLUMNS

__all__ = ("catch_up", "index_bounds", "reset", "search_condition", "search_page", "uses_index")

#: Newest jobs (of those the other filters list) a search reads before it asks the index.
WINDOW = 2000
#: How long a search query may work on one page. SQLite checks it between its VM steps: it
#: bounds the scans, but FTS5 (3.40) matches a phrase within one step, so a text whose every
#: trigram is in most jobs still takes its 0.9-4 s on 1,000,000 jobs (bench/results/search.md).
INDEX_SECONDS = 0.15
#: SQLite VM steps between two looks at that time limit.
CHECK_STEPS = 1000
#: Jobs a search reads, newest first, when the index ran out of time: the page may then be
#: short (even empty) with a `next_cursor` that goes on below the jobs read.
SCAN = 20_000
#: Jobs indexed per write transaction by `catch_up`: the write lock is held for one batch
#: (about 0.1 s) at a time, so enqueues and claims wait no longer than that.
CATCH_UP_BATCH = 5000
#: A search first indexes every job missing from the index when there are at most this many
#: (a second or two); beyond, `SEARCH_CATCH_UP_BATCHES` batches, and the jobs left above the
#: mark are matched by a scan of their rowid range (maintenance indexes them meanwhile, a few
#: batches a second).
SEARCH_CATCH_UP_ALL = 50_000
SEARCH_CATCH_UP_BATCHES = 2
_COLUMNS = ", ".join(SEARCHED_COLUMNS)


def uses_index(q: str) -> bool:
    """A search for `q` may ask the trigram index (3 characters or more; shorter text is a
    scan, which trigrams cannot index)."""
    return len(q) >= 3


def search_condition(q: str) -> tuple[str, list[str]]:
    """The WHERE condition (and its parameters) for jobs whose searched columns contain `q`:
    the trigram index from 3 characters for the jobs up to its mark, a scan (LIKE) of the
    rowids above the mark (not indexed yet) and for shorter text."""
    if uses_index(q):
        phrase = '"' + q.replace('"', '""') + '"'
        like, like_args = _like_condition(q)
        return (
            "rowid IN (SELECT rowid FROM jobs_search WHERE jobs_search MATCH ? UNION ALL "
            f"SELECT rowid FROM jobs WHERE rowid > (SELECT indexed FROM jobs_search_state) AND {like})",
            [phrase, *like_args],
        )
    return _like_condition(q)


def _like_condition(q: str) -> tuple[str, list[str]]:
    """The searched columns contain `q` (LIKE, its wildcards escaped): a scan."""
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    ors = " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in SEARCHED_COLUMNS)
    return f"({ors})", [pattern] * len(SEARCHED_COLUMNS)


@contextmanager
def _time_limit(conn: sqlite3.Connection, seconds: float) -> Iterator[None]:
    """Interrupt the statement run inside after `seconds` (sqlite3.OperationalError)."""
    deadline = time.monotonic() + seconds
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), CHECK_STEPS)
    try:
        yield
    finally:
        conn.set_progress_handler(None, 0)


def _page(rows: list[Any], limit: int, cursor: str | None = None) -> JobPage:
    jobs = [job_from_row(r) for r in rows[:limit]]
    if len(rows) > limit and jobs:
        return JobPage(jobs=jobs, next_cursor=jobs[-1].id)
    return JobPage(jobs=jobs, next_cursor=cursor)


def search_page(conn: sqlite3.Connection, where: list[str], args: list[Any], q: str, limit: int) -> JobPage:
    """One page of the jobs matching the conditions `where` (with `args`) that contain `q`.

    The newest `WINDOW` jobs `where` lists are read first: a common text fills the page there.
    Otherwise the trigram index answers, fast for a rare text, unless it takes longer than
    `INDEX_SECONDS`: then the newest `SCAN` jobs are read, and the page ends there.
    """
    scoped = f"WHERE {' AND '.join(where)}" if where else ""
    newest = f"SELECT {JOB_COLUMNS} FROM jobs {scoped} ORDER BY id DESC LIMIT ?"
    like, like_args = _like_condition(q)
    rows = conn.execute(
        f"SELECT * FROM ({newest}) WHERE {like} LIMIT ?", (*args, WINDOW, *like_args, limit + 1)
    ).fetchall()
    if len(rows) > limit:
        return _page(rows, limit)
    clause, clause_args = search_condition(q)
    indexed = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' AND '.join([*where, clause])} ORDER BY id DESC LIMIT ?"
    try:
        with _time_limit(conn, INDEX_SECONDS):
            return _page(conn.execute(indexed, (*args, *clause_args, limit + 1)).fetchall(), limit)
    except sqlite3.OperationalError as exc:
        if "interrupt" not in str(exc):
            raise
    rows = conn.execute(
        f"SELECT * FROM ({newest}) WHERE {like} LIMIT ?", (*args, SCAN, *like_args, limit + 1)
    ).fetchall()
    if len(rows) > limit:
        return _page(rows, limit)
    read, last = conn.execute(
        f"SELECT count(*), min(id) FROM (SELECT id FROM jobs {scoped} ORDER BY id DESC LIMIT ?)", (*args, SCAN)
    ).fetchone()
    return _page(rows, limit, cursor=last if read >= SCAN else None)


def index_bounds(conn: sqlite3.Connection) -> tuple[int, int]:
    """(the mark: the highest jobs rowid indexed, the highest jobs rowid): the index holds
    every job when they are equal."""
    mark, top = conn.execute(
        "SELECT indexed, (SELECT coalesce(max(rowid), 0) FROM jobs) FROM jobs_search_state"
    ).fetchone()
    return int(mark), int(top)


def catch_up(conn: sqlite3.Connection, batch: int | None = None) -> tuple[int, int]:
    """Index the next `batch` (default `CATCH_UP_BATCH`) jobs above the mark and raise the
    mark past them, in the caller's write transaction; returns (jobs indexed, the new mark).
    A row changed or deleted above the mark was never indexed (the triggers leave it alone):
    it is read here as it is now."""
    (mark,) = conn.execute("SELECT indexed FROM jobs_search_state").fetchone()
    count, top = conn.execute(
        "SELECT count(*), max(rowid) FROM "
        "(SELECT rowid FROM jobs WHERE rowid > ? ORDER BY rowid LIMIT ?)",
        (mark, batch or CATCH_UP_BATCH),
    ).fetchone()
    if not count:
        return 0, int(mark)
    conn.execute(
        f"INSERT INTO jobs_search (rowid, {_COLUMNS}) SELECT rowid, {_COLUMNS} FROM jobs "
        "WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
        (mark, top),
    )
    conn.execute("UPDATE jobs_search_state SET indexed = ?", (top,))
    return int(count), int(top)


def reset(conn: sqlite3.Connection) -> None:
    """Empty the index and set its mark to 0 (in the caller's write transaction), so the
    catch-up indexes every job again: needed after a VACUUM, which may renumber the rowids
    the index is keyed by. SQL: `INSERT INTO jobs_search (jobs_search) VALUES
    ('delete-all'); UPDATE jobs_search_state SET indexed = 0`."""
    conn.execute("INSERT INTO jobs_search (jobs_search) VALUES ('delete-all')")
    conn.execute("UPDATE jobs_search_state SET indexed = 0")
