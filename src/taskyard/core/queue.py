"""Queues: settings stored in the backend, counts per status, and throughput statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from taskyard.core.job import JobStatus

__all__ = ("UNLIMITED", "QueueCounts", "QueueSettings", "RateLimit", "StatsRow", "claim_budget", "rate_window_start")


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
    """Outcomes of one queue during one minute (`minute` is the start of the minute, UTC)."""

    minute: datetime
    queue: str
    completed: int = 0
    failed: int = 0
