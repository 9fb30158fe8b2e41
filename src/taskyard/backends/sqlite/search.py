"""Searching the SQLite store's jobs (`JobFilter.q`): a window of the newest jobs first, then
the trigram index `jobs_search` (schema migration 3) under a time limit, then a bounded scan."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskyard.core.job import JobPage

from .rows import JOB_COLUMNS, job_from_row

__all__ = ("search_condition", "search_page")

#: Newest jobs (of those the other filters list) a search reads before it asks the index.
WINDOW = 2000
#: How long a search query may work on one page. SQLite checks it between its VM steps: it
#: bounds the scans, but FTS5 (3.40) matches a phrase within one step, so a text whose every
#: trigram is in most jobs still takes its 0.9-4 s on 1,000,000 jobs (bench/results/search.md).
INDEX_SECONDS = 0.15
#: Jobs a search reads, newest first, when the index ran out of time: the page may then be
#: short (even empty) with a `next_cursor` that goes on below the jobs read.
SCAN = 20_000
_LIKE_COLUMNS = ("id", "task", "queue", "unique_key", "payload", "errors")


def search_condition(q: str) -> tuple[str, list[str]]:
    """The WHERE condition (and its parameters) for jobs whose searched columns contain `q`:
    the trigram index from 3 characters, a scan (LIKE) for shorter text, which trigrams
    cannot index."""
    if len(q) >= 3:
        phrase = '"' + q.replace('"', '""') + '"'
        return "rowid IN (SELECT rowid FROM jobs_search WHERE jobs_search MATCH ?)", [phrase]
    return _like_condition(q)


def _like_condition(q: str) -> tuple[str, list[str]]:
    """The searched columns contain `q` (LIKE, its wildcards escaped): a scan."""
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    ors = " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in _LIKE_COLUMNS)
    return f"({ors})", [pattern] * len(_LIKE_COLUMNS)


@contextmanager
def _time_limit(conn: sqlite3.Connection, seconds: float) -> Iterator[None]:
    """Interrupt the statement run inside after `seconds` (sqlite3.OperationalError)."""
    deadline = time.monotonic() + seconds
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
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
