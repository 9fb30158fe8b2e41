"""Per-minute statistics in SQLite: outcomes per (minute, queue, task), their latency
histograms one row per cell, and sampled queue depths; all kept `STATS_RETENTION`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from taskyard.core.queue import STATS_RETENTION, DepthRow, StatsRow, latency_histogram

from .rows import from_us, to_us

__all__ = ("depth_read", "depth_record", "stats_read", "stats_record")

_RETENTION_US = int(STATS_RETENTION.total_seconds() * 1_000_000)


def stats_record(conn: sqlite3.Connection, rows: Sequence[StatsRow]) -> None:
    """Add outcome counts and latency cells; rows past the retention are discarded."""
    if not rows:
        return
    conn.executemany(
        "INSERT INTO stats (minute, queue, task, completed, failed) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (minute, queue, task) DO UPDATE SET completed = completed + excluded.completed, "
        "failed = failed + excluded.failed",
        [(to_us(r.minute), r.queue, r.task, r.completed, r.failed) for r in rows],
    )
    conn.executemany(
        "INSERT INTO stats_latency (minute, queue, task, cell, count) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (minute, queue, task, cell) DO UPDATE SET count = count + excluded.count",
        [(to_us(r.minute), r.queue, r.task, i, n) for r in rows for i, n in enumerate(r.latency) if n],
    )
    oldest = max(to_us(r.minute) for r in rows) - _RETENTION_US
    conn.execute("DELETE FROM stats WHERE minute < ?", (oldest,))
    conn.execute("DELETE FROM stats_latency WHERE minute < ?", (oldest,))


def stats_read(conn: sqlite3.Connection, since: datetime, bin_minutes: int = 1) -> list[StatsRow]:
    """Rows from `since` on, summed into bins of `bin_minutes` (aligned to the Unix epoch),
    sorted by minute, queue, task."""
    size = max(1, bin_minutes) * 60_000_000
    cells: dict[tuple[int, str, str], dict[int, int]] = {}
    for minute, queue, task, cell, count in conn.execute(
        "SELECT minute - minute % ? AS bin, queue, task, cell, sum(count) FROM stats_latency "
        "WHERE minute >= ? GROUP BY bin, queue, task, cell",
        (size, to_us(since)),
    ):
        cells.setdefault((minute, queue, task), {})[cell] = count
    out = []
    for minute, queue, task, completed, failed in conn.execute(
        "SELECT minute - minute % ? AS bin, queue, task, sum(completed), sum(failed) FROM stats "
        "WHERE minute >= ? GROUP BY bin, queue, task ORDER BY bin, queue, task",
        (size, to_us(since)),
    ):
        when = from_us(minute)
        assert when is not None
        out.append(StatsRow(minute=when, queue=queue, task=task, completed=completed, failed=failed,
                            latency=latency_histogram(cells.get((minute, queue, task), {}))))
    return out


def depth_record(conn: sqlite3.Connection, rows: Sequence[DepthRow]) -> None:
    """Store depth samples (the last of a minute wins); samples past the retention go."""
    if not rows:
        return
    conn.executemany(
        "INSERT INTO stats_depth (minute, queue, depth) VALUES (?, ?, ?) "
        "ON CONFLICT (minute, queue) DO UPDATE SET depth = excluded.depth",
        [(to_us(r.minute), r.queue, r.depth) for r in rows],
    )
    oldest = max(to_us(r.minute) for r in rows) - _RETENTION_US
    conn.execute("DELETE FROM stats_depth WHERE minute < ?", (oldest,))


def depth_read(conn: sqlite3.Connection, since: datetime) -> list[DepthRow]:
    """Depth samples from `since` on, sorted by minute then queue."""
    out = []
    for minute, queue, depth in conn.execute(
        "SELECT minute, queue, depth FROM stats_depth WHERE minute >= ? ORDER BY minute, queue",
        (to_us(since),),
    ):
        when = from_us(minute)
        assert when is not None
        out.append(DepthRow(minute=when, queue=queue, depth=depth))
    return out
