"""`RunStats`: a worker's per-minute counts of completed and failed jobs by queue and task,
and how long its jobs waited to start, kept in memory and written to the store in one batch
(the heartbeat flushes them)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from taskyard.backends.protocol import Backend
from taskyard.core.job import Job
from taskyard.core.queue import StatsRow, latency_bucket, latency_histogram
from taskyard.services.store_clock import StoreClock

__all__ = ("RunStats",)

log = logging.getLogger("taskyard.worker")


@dataclass(slots=True)
class _Cell:
    completed: int = 0
    failed: int = 0
    latency: dict[int, int] = field(default_factory=dict)


class RunStats:
    """Counts by (minute of the store's clock, queue, task), until `flush` writes them."""

    def __init__(self, store_clock: StoreClock) -> None:
        self.store_clock = store_clock
        self._cells: dict[tuple[datetime, str, str], _Cell] = {}

    def _cell(self, queue: str, task: str) -> _Cell:
        minute = self.store_clock.now().replace(second=0, microsecond=0)
        return self._cells.setdefault((minute, queue, task), _Cell())

    def count(self, queue: str, *, completed: int = 0, failed: int = 0, task: str = "") -> None:
        """Add runs of `queue` (and `task`) that ended now."""
        cell = self._cell(queue, task)
        cell.completed += completed
        cell.failed += failed

    def started(self, job: Job) -> None:
        """Count a run that started now, by how long it waited past its run time (the store's
        times: `started_at` is the claim's, `run_at` the enqueue's or the retry's)."""
        if job.started_at is None:
            return
        cells = self._cell(job.queue, job.task).latency
        i = latency_bucket((job.started_at - job.run_at).total_seconds())
        cells[i] = cells.get(i, 0) + 1

    async def flush(self, backend: Backend) -> None:
        """Write the counts collected since the last flush (a failed write is logged and those
        counts are dropped)."""
        if not self._cells:
            return
        rows = [
            StatsRow(minute=m, queue=q, task=t, completed=c.completed, failed=c.failed,
                     latency=latency_histogram(c.latency))
            for (m, q, t), c in self._cells.items()
        ]
        self._cells = {}
        try:
            await backend.stats_record(rows=rows)
        except Exception as exc:
            log.warning("could not record statistics: %s", exc)
