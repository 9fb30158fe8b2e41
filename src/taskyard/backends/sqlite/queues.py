"""Queue settings, counts per status, and per-minute statistics."""

from __future__ import annotations

import sqlite3
from typing import Any

from taskyard.backends.protocol import UNSET
from taskyard.core.coverage import TaskCounts
from taskyard.core.job import JobStatus
from taskyard.core.queue import QueueCounts, QueueSettings, RateLimit

from .rows import from_us

__all__ = ("counts", "get", "list_all", "task_counts", "update")

_SETTINGS = "SELECT name, paused, concurrency, rate_limit, rate_period FROM queues"
_DAY_US = 86_400_000_000


def _settings(row: tuple[Any, ...]) -> QueueSettings:
    name, paused, concurrency, rate, period = row
    return QueueSettings(
        name=name,
        paused=bool(paused),
        concurrency=concurrency,
        rate_limit=RateLimit(limit=rate, period=period) if rate is not None else None,
    )


def task_counts(conn: sqlite3.Connection, now_us: int) -> list[TaskCounts]:
    """Active jobs per (queue, task); each status read through its own partial index."""
    cells: dict[tuple[str, str], list[Any]] = {}
    column = {"pending": 0, "scheduled": 1, "running": 2}
    index = {"pending": "jobs_pending", "scheduled": "jobs_scheduled", "running": "jobs_lease"}
    for status, position in column.items():
        # A literal status (not a parameter) lets SQLite use that status's partial index.
        rows = conn.execute(
            "SELECT queue, task, COUNT(*), MIN(CASE WHEN status = 'pending' OR "
            "(status = 'scheduled' AND run_at <= ?) "
            f"THEN run_at END) FROM jobs INDEXED BY {index[status]} WHERE status = '{status}' "
            "GROUP BY queue, task",
            (now_us,),
        )
        for queue, task, n, due_since in rows:
            cell = cells.setdefault((queue, task), [0, 0, 0, None])
            cell[position] = n
            if due_since is not None and (cell[3] is None or due_since < cell[3]):
                cell[3] = due_since
    return [
        TaskCounts(
            queue=q, task=t, pending=c[0], scheduled=c[1], running=c[2], waiting_since=from_us(c[3])
        )
        for (q, t), c in sorted(cells.items())
    ]


def get(conn: sqlite3.Connection, queue: str) -> QueueSettings:
    """Stored settings, or the defaults."""
    row = conn.execute(f"{_SETTINGS} WHERE name = ?", (queue,)).fetchone()
    return _settings(row) if row else QueueSettings(name=queue)


def list_all(conn: sqlite3.Connection) -> list[QueueSettings]:
    """Every known queue (enqueue records each queue), sorted by name."""
    return [_settings(r) for r in conn.execute(f"{_SETTINGS} ORDER BY name")]


def update(
    conn: sqlite3.Connection,
    queue: str,
    paused: Any,
    concurrency: Any,
    rate_limit: Any,
) -> QueueSettings:
    """Change the given settings (UNSET leaves one as it is)."""
    old = get(conn, queue)
    new = QueueSettings(
        name=queue,
        paused=old.paused if paused is UNSET else bool(paused),
        concurrency=old.concurrency if concurrency is UNSET else concurrency,
        rate_limit=old.rate_limit if rate_limit is UNSET else rate_limit,
    )
    rate = new.rate_limit
    conn.execute(
        "INSERT INTO queues (name, paused, concurrency, rate_limit, rate_period) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, "
        "concurrency = excluded.concurrency, rate_limit = excluded.rate_limit, "
        "rate_period = excluded.rate_period",
        (
            queue,
            int(new.paused),
            new.concurrency,
            rate.limit if rate else None,
            rate.period if rate else None,
        ),
    )
    return new


def counts(conn: sqlite3.Connection) -> list[QueueCounts]:
    """Counts per status of every known queue, sorted by name."""
    per: dict[str, dict[JobStatus, int]] = {
        name: {} for (name,) in conn.execute("SELECT name FROM queues")
    }
    for queue, status, n in conn.execute(
        "SELECT queue, status, COUNT(*) FROM jobs GROUP BY queue, status"
    ):
        per.setdefault(queue, {})[JobStatus(status)] = n
    return [QueueCounts(queue=name, counts=per[name]) for name in sorted(per)]
