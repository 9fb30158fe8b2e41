"""The claim: due jobs → running, in claim order, within each queue's pause, concurrency and
rate-limit budget, in one transaction.

Candidates are read with `SELECT ... FOR UPDATE SKIP LOCKED`: rows another claimer holds are
passed over, never waited for, so claimers do not queue behind each other. Queues with a
concurrency or rate limit are locked (`FOR UPDATE`, in name order: no deadlock between
claimers) while their budget is read and spent, so two claimers never both fill it.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from asyncmy.cursors import Cursor

from taskyard.core.job import Job
from taskyard.core.queue import claim_budget

from .jobs import fetch_jobs, marks, server_now
from .rows import JOB_COLUMNS, db_time
from .schema import Tables

__all__ = ("claim",)

_ORDER = "ORDER BY priority DESC, run_at, id"


def _filter(
    column: str, values: Collection[str] | None, *, negate: bool = False
) -> tuple[str, list[Any]]:
    if values is None or (negate and not values):
        return "", []
    names = sorted(set(values))
    return f" AND {column} {'NOT ' if negate else ''}IN ({marks(len(names))})", names


async def _budgets(
    cur: Cursor, t: Tables, queues: Sequence[str] | None, at: datetime
) -> tuple[set[str], dict[str, int], dict[str, float]]:
    """Paused queues, the claim budgets of limited queues (locked until commit), and their
    current rate windows."""
    where, args = _filter("name", queues)
    await cur.execute(
        "SELECT name, paused, concurrency, rate_limit, rate_period, window_start, window_count "
        f"FROM {t.queues} WHERE (paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL)"
        f"{where} ORDER BY name FOR UPDATE",
        args,
    )
    rows = list(await cur.fetchall())
    closed: set[str] = set()
    budgets: dict[str, int] = {}
    windows: dict[str, float] = {}
    running: dict[str, int] = {}
    counted = [r[0] for r in rows if not r[1] and r[2] is not None]
    if counted:
        await cur.execute(
            f"SELECT queue, COUNT(*) FROM {t.jobs} WHERE status = 'running' "
            f"AND queue IN ({marks(len(counted))}) GROUP BY queue",
            counted,
        )
        running = {q: int(n) for q, n in await cur.fetchall()}
    for name, paused, concurrency, rate, period, w_start, w_count in rows:
        if paused:
            closed.add(name)
            continue
        budget, window = claim_budget(
            concurrency=concurrency, running=running.get(name, 0), rate=rate, period=period,
            window_start=w_start, window_count=w_count, at=at.timestamp(),
        )
        if window is not None:
            windows[name] = window
        if budget <= 0:
            closed.add(name)
        else:
            budgets[name] = budget
    return closed, budgets, windows


async def claim(
    cur: Cursor,
    t: Tables,
    queues: Sequence[str] | None,
    limit: int,
    worker_id: str,
    lease: float,
    now: datetime | None,
    tasks: Collection[str] | None,
) -> list[Job]:
    """Claim up to `limit` due jobs from `queues` (None = all) of `tasks` (None = any)."""
    at = await server_now(cur, now)
    at_db = db_time(at)
    in_queues = _filter("queue", queues)
    of_tasks = _filter("task", tasks)
    # Due scheduled jobs of this claim's scope become pending first, so one index gives the
    # claim order; those another transaction holds are left to it.
    await cur.execute(
        f"SELECT id FROM {t.jobs} WHERE status = 'scheduled' AND run_at <= %s"
        f"{in_queues[0]}{of_tasks[0]} FOR UPDATE SKIP LOCKED",
        (at_db, *in_queues[1], *of_tasks[1]),
    )
    due = [r[0] for r in await cur.fetchall()]
    if due:
        await cur.execute(
            f"UPDATE {t.jobs} SET status = 'pending' WHERE id IN ({marks(len(due))})", due
        )
    closed, budgets, windows = await _budgets(cur, t, queues, at)
    candidates: list[list[tuple[Any, ...]]] = []
    skip = _filter("queue", closed | set(budgets), negate=True)
    await cur.execute(
        f"SELECT -priority, run_at, id, queue FROM {t.jobs} WHERE status = 'pending'"
        f"{in_queues[0]}{skip[0]}{of_tasks[0]} {_ORDER} LIMIT %s FOR UPDATE SKIP LOCKED",
        (*in_queues[1], *skip[1], *of_tasks[1], limit),
    )
    candidates.append(list(await cur.fetchall()))
    for queue in sorted(budgets):
        await cur.execute(
            f"SELECT -priority, run_at, id, queue FROM {t.jobs} WHERE status = 'pending' "
            f"AND queue = %s{of_tasks[0]} {_ORDER} LIMIT %s FOR UPDATE SKIP LOCKED",
            (queue, *of_tasks[1], min(limit, budgets[queue])),
        )
        candidates.append(list(await cur.fetchall()))
    # Rows locked but not picked are released at commit.
    picked = list(itertools.islice(heapq.merge(*candidates), limit))
    if not picked:
        return []
    ids = [row[2] for row in picked]
    started: dict[str, int] = {}
    for row in picked:
        started[row[3]] = started.get(row[3], 0) + 1
    for queue, count in started.items():
        window = windows.get(queue)
        if window is not None:
            await cur.execute(
                f"UPDATE {t.queues} SET window_count = "
                "CASE WHEN window_start = %s THEN window_count + %s ELSE %s END, window_start = %s "
                "WHERE name = %s",
                (window, count, count, window, queue),
            )
    await cur.execute(
        f"UPDATE {t.jobs} SET status = 'running', attempt = attempt + 1, started_at = %s, "
        "worker_id = %s, lease_token = LEFT(SHA2(CONCAT(%s, id), 256), 32), "
        f"lease_expires_at = %s, cancel_requested = FALSE WHERE id IN ({marks(len(ids))})",
        (at_db, worker_id, os.urandom(16).hex(), db_time(at + timedelta(seconds=lease)), *ids),
    )
    jobs = {
        j.id: j
        for j in await fetch_jobs(
            cur, f"SELECT {JOB_COLUMNS} FROM {t.jobs} WHERE id IN ({marks(len(ids))})", ids
        )
    }
    return [jobs[i] for i in ids]
