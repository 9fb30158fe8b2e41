"""Queues: settings stored in the backend, counts per status, and throughput statistics."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from taskyard.core.job import JobStatus

__all__ = (
    "LATENCY_BOUNDS", "STATS_RETENTION", "UNLIMITED", "DepthRow", "QueueCounts", "QueueSettings",
    "RateLimit", "StatsRow", "claim_budget", "latency_bucket", "latency_histogram",
    "latency_quantile", "rate_window_start", "stats_bin", "stats_binned",
)

#: How long the per-minute statistics are kept, counted back from the newest minute written.
STATS_RETENTION = timedelta(days=7)
#: Upper bounds (seconds) of the enqueue→start latency buckets; one more bucket holds the rest.
LATENCY_BOUNDS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` jobs of a queue may start per fixed window of `period` seconds."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("rate limit must be at least 1 job per period")
        if self.period <= 0:
            raise ValueError("rate limit period must be > 0 seconds")


def rate_window_start(epoch_seconds: float, period: float) -> float:
    """Start (epoch seconds) of the fixed rate-limit window of `period` seconds that contains
    the instant `epoch_seconds`: windows start at multiples of `period` since the epoch."""
    return epoch_seconds - (epoch_seconds % period)


#: The budget of a queue with neither a concurrency cap nor a rate limit.
UNLIMITED = 1 << 30


def claim_budget(
    *,
    concurrency: int | None,
    running: int,
    rate: int | None,
    period: float | None,
    window_start: float | None,
    window_count: int,
    at: float,
) -> tuple[int, float | None]:
    """How many jobs of a queue a claim at `at` (epoch seconds) may start — at most
    `concurrency - running` and, with a rate limit, `rate` minus the starts already counted
    in the current window — and that window's start (None without a rate limit). A budget of
    0 or less closes the queue for this claim; `UNLIMITED` when nothing limits it. The starts
    counted in `window_count` belong to `window_start`: another window starts from zero."""
    budget = UNLIMITED
    if concurrency is not None:
        budget = min(budget, concurrency - running)
    window = None
    if rate is not None and period is not None:
        window = rate_window_start(at, period)
        budget = min(budget, rate - (window_count if window_start == window else 0))
    return budget, window


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Per-queue settings shared by every worker.

    `concurrency` caps how many jobs of the queue run at once across all workers (None = no cap).
    """

    name: str
    paused: bool = False
    concurrency: int | None = None
    rate_limit: RateLimit | None = None

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("queue concurrency must be at least 1 (or None for no limit)")


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """How many jobs of one queue are in each status."""

    queue: str
    counts: dict[JobStatus, int] = field(default_factory=dict)

    def get(self, status: JobStatus) -> int:
        return self.counts.get(status, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class StatsRow:
    """Outcomes of one queue (and task) during one minute (`minute` is the start of the
    minute, UTC). `task` is "" for rows written before tasks were counted apart. `latency`
    counts the jobs that started in the minute by how long they waited from their run time
    (a histogram over `LATENCY_BOUNDS`, one more cell than bounds; () when none started)."""

    minute: datetime
    queue: str
    completed: int = 0
    failed: int = 0
    task: str = ""
    latency: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.latency and len(self.latency) != len(LATENCY_BOUNDS) + 1:
            raise ValueError(f"a latency histogram has {len(LATENCY_BOUNDS) + 1} cells, not {len(self.latency)}")


@dataclass(frozen=True, slots=True)
class DepthRow:
    """How many jobs of `queue` were waiting (pending) at the last sample of `minute`."""

    minute: datetime
    queue: str
    depth: int


def stats_bin(minute: datetime, bin_minutes: int) -> datetime:
    """The start of the `bin_minutes`-long bin (aligned to the Unix epoch) holding `minute`."""
    if bin_minutes <= 1:
        return minute
    size = bin_minutes * 60
    return minute - timedelta(seconds=int(minute.timestamp()) % size, microseconds=minute.microsecond)


def stats_binned(rows: list[StatsRow], bin_minutes: int) -> list[StatsRow]:
    """`rows` summed into bins (see `stats_bin`), sorted by bin, queue, task: the reference
    for what `Backend.stats_read(bin_minutes=...)` returns."""
    if bin_minutes <= 1:
        return rows
    cells: dict[tuple[datetime, str, str], list[Any]] = {}
    for r in rows:
        cell = cells.setdefault((stats_bin(r.minute, bin_minutes), r.queue, r.task), [0, 0, {}])
        cell[0] += r.completed
        cell[1] += r.failed
        for i, n in enumerate(r.latency):
            if n:
                cell[2][i] = cell[2].get(i, 0) + n
    return [
        StatsRow(minute=m, queue=q, task=t, completed=c[0], failed=c[1], latency=latency_histogram(c[2]))
        for (m, q, t), c in sorted(cells.items(), key=lambda kv: kv[0])
    ]


def latency_bucket(seconds: float) -> int:
    """The histogram cell of a wait of `seconds` (negative waits count as none)."""
    return bisect.bisect_left(LATENCY_BOUNDS, max(seconds, 0.0))


def latency_histogram(cells: dict[int, int]) -> tuple[int, ...]:
    """A full histogram from sparse {cell: count}, or () when it counts nothing."""
    if not any(cells.values()):
        return ()
    return tuple(cells.get(i, 0) for i in range(len(LATENCY_BOUNDS) + 1))


def latency_quantile(histogram: tuple[int, ...] | list[int], q: float) -> float | None:
    """The upper bound (seconds) of the cell holding quantile `q` (0..1), None when empty; the
    last cell, unbounded, reports its lower bound."""
    total = sum(histogram)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for i, count in enumerate(histogram):
        seen += count
        if seen >= rank and count:
            return LATENCY_BOUNDS[i] if i < len(LATENCY_BOUNDS) else LATENCY_BOUNDS[-1]
    return LATENCY_BOUNDS[-1]
