"""The claim: due jobs → running, in claim order, within each queue's pause, concurrency and
rate-limit budget. Runs inside one `BEGIN IMMEDIATE` transaction, so no job is claimed twice
even by several processes sharing the file.
"""

from __future__ import annotations

import heapq
import itertools
import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from taskyard.core.job import Job
from taskyard.core.queue import claim_budget

from .rows import JOB_COLUMNS, job_from_row, to_us

__all__ = ("claim",)


def _budgets(
    conn: sqlite3.Connection, queues: Sequence[str] | None, now_us: int
) -> tuple[set[str], dict[str, int], dict[str, float]]:
    """Paused queues, claim budgets of limited queues, and their current rate windows."""
    sql = (
        "SELECT name, paused, concurrency, rate_limit, rate_period, window_start, window_count "
        "FROM queues WHERE (paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL)"
    )
    args: list[str] = []
    if queues is not None:
        sql += f" AND name IN ({', '.join('?' * len(queues))})"
        args = list(queues)
    closed: set[str] = set()
    budgets: dict[str, int] = {}
    windows: dict[str, float] = {}
    for name, paused, concurrency, rate, period, w_start, w_count in conn.execute(sql, args):
        if paused:
            closed.add(name)
            continue
        running = 0
        if concurrency is not None:
            (running,) = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE queue = ? AND status = 'running'", (name,)
            ).fetchone()
        budget, window = claim_budget(
            concurrency=concurrency, running=running, rate=rate, period=period,
            window_start=w_start, window_count=w_count, at=now_us / 1_000_000,
        )
        if window is not None:
            windows[name] = window
        if budget <= 0:
            closed.add(name)
        else:
            budgets[name] = budget
    return closed, budgets, windows


def claim(
    conn: sqlite3.Connection,
    queues: Sequence[str] | None,
    limit: int,
    worker_id: str,
    lease: float,
    now: datetime,
    tasks: Collection[str] | None = None,
) -> list[Job]:
    """Claim up to `limit` due jobs from `queues` (None = all) of `tasks` (None = any)."""
    if limit <= 0 or (queues is not None and not queues) or (tasks is not None and not tasks):
        return []
    now_us = to_us(now)
    expires_us = to_us(now + timedelta(seconds=lease))
    # Due scheduled jobs become pending first, so the pending indexes give the claim order.
    conn.execute(
        "UPDATE jobs SET status = 'pending' WHERE status = 'scheduled' AND run_at <= ?", (now_us,)
    )
    closed, budgets, windows = _budgets(conn, queues, now_us)
    only = _task_filter(tasks)
    if queues is None:
        picked = _pick_any(conn, limit, closed, budgets, only)
    else:
        picked = _pick_from(conn, list(dict.fromkeys(queues)), limit, closed, budgets, only)
    if not picked:
        return []
    started: dict[str, int] = {}
    for _, queue in picked:
        started[queue] = started.get(queue, 0) + 1
    for queue, count in started.items():
        window = windows.get(queue)
        if window is not None:
            conn.execute(
                "UPDATE queues SET window_count = "
                "CASE WHEN window_start = ? THEN window_count + ? ELSE ? END, window_start = ? "
                "WHERE name = ?",
                (window, count, count, window, queue),
            )
    return _start(conn, [job_id for job_id, _ in picked], worker_id, now_us, expires_us)


def _task_filter(tasks: Collection[str] | None) -> tuple[str, list[str]]:
    """The SQL condition (and its arguments) that keeps jobs of `tasks` only."""
    if tasks is None:
        return "", []
    names = sorted(set(tasks))
    return f" AND task IN ({', '.join('?' * len(names))})", names


def _pick_from(
    conn: sqlite3.Connection,
    queues: list[str],
    limit: int,
    closed: set[str],
    budgets: dict[str, int],
    only: tuple[str, list[str]],
) -> list[tuple[str, str]]:
    """The best `limit` pending jobs of the given queues: each queue read in claim order from
    its own index (at most its budget), then merged."""
    per_queue = []
    for queue in queues:
        if queue in closed:
            continue
        cap = min(limit, budgets.get(queue, limit))
        rows = conn.execute(
            "SELECT -priority, run_at, id, queue FROM jobs INDEXED BY jobs_pending_queue "
            f"WHERE status = 'pending' AND queue = ?{only[0]} "
            "ORDER BY priority DESC, run_at, id LIMIT ?",
            (queue, *only[1], cap),
        ).fetchall()
        if rows:
            per_queue.append(rows)
    merged = (
        heapq.merge(*per_queue) if len(per_queue) > 1 else iter(per_queue[0] if per_queue else [])
    )
    return [(row[2], row[3]) for row in itertools.islice(merged, limit)]


def _pick_any(
    conn: sqlite3.Connection,
    limit: int,
    closed: set[str],
    budgets: dict[str, int],
    only: tuple[str, list[str]],
) -> list[tuple[str, str]]:
    """The best `limit` pending jobs of every open queue, within the limited queues' budgets.

    Reads the global claim-order index; when a limited queue runs out of budget mid-read its
    remaining rows are skipped and the read is repeated without it.
    """
    picked: list[tuple[str, str]] = []
    taken: set[str] = set()
    while len(picked) < limit:
        sql = f"SELECT id, queue FROM jobs INDEXED BY jobs_pending WHERE status = 'pending'{only[0]}"
        args: list[object] = list(only[1])
        if closed:
            sql += f" AND queue NOT IN ({', '.join('?' * len(closed))})"
            args.extend(closed)
        need = limit - len(picked)
        rows = conn.execute(
            sql + " ORDER BY priority DESC, run_at, id LIMIT ?", (*args, need + len(taken))
        ).fetchall()
        skipped = False
        for job_id, queue in rows:
            if job_id in taken or len(picked) == limit:
                continue
            budget = budgets.get(queue)
            if budget is not None:
                if budget <= 0:
                    skipped = True
                    continue
                budgets[queue] = budget - 1
                if budget == 1:
                    closed.add(queue)
            picked.append((job_id, queue))
            taken.add(job_id)
        if not skipped:
            break
    return picked


def _start(
    conn: sqlite3.Connection, ids: list[str], worker_id: str, now_us: int, expires_us: int
) -> list[Job]:
    """pending → running for `ids`; returns them in the order given."""
    rows = conn.execute(
        "UPDATE jobs SET status = 'running', attempt = attempt + 1, started_at = ?, "
        "worker_id = ?, lease_token = lower(hex(randomblob(12))), lease_expires_at = ?, "
        "lease_seconds = ?, "
        f"cancel_requested = 0 WHERE id IN ({', '.join('?' * len(ids))}) RETURNING {JOB_COLUMNS}",
        (now_us, worker_id, expires_us, (expires_us - now_us) / 1e6, *ids),
    ).fetchall()
    by_id = {row[0]: job_from_row(row) for row in rows}
    return [by_id[i] for i in ids]
