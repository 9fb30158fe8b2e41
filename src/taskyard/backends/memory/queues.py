"""The memory backend's queues: counts by status and by task, settings (pause, concurrency,
rate limit), and the per-minute statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from taskyard.backends.protocol import UNSET
from taskyard.clock import utcnow
from taskyard.core.coverage import TaskCounts
from taskyard.core.job import ACTIVE_STATUSES, JobStatus
from taskyard.core.queue import (
    STATS_RETENTION,
    DepthRow,
    QueueCounts,
    QueueSettings,
    RateLimit,
    StatsRow,
    latency_histogram,
    stats_binned,
)

from .state import MemoryState

__all__ = ("QueuesMixin",)

S = JobStatus


class QueuesMixin(MemoryState):
    """Queue counts, settings and statistics."""

    async def queue_counts(self) -> list[QueueCounts]:
        with self._lock:
            counts: dict[str, dict[JobStatus, int]] = {name: {} for name in self._queues}
            for job in self._jobs.values():
                per = counts.setdefault(job.queue, {})
                per[job.status] = per.get(job.status, 0) + 1
        return [QueueCounts(queue=name, counts=counts[name]) for name in sorted(counts)]

    async def task_counts(self, *, now: datetime | None = None) -> list[TaskCounts]:
        now = now or utcnow()
        cells: dict[tuple[str, str], list[Any]] = {}
        with self._lock:
            for job in self._jobs.values():
                if job.status not in ACTIVE_STATUSES:
                    continue
                cell = cells.setdefault((job.queue, job.task), [0, 0, 0, None])
                cell[(S.PENDING, S.SCHEDULED, S.RUNNING).index(job.status)] += 1
                due = job.status is S.PENDING or (job.status is S.SCHEDULED and job.run_at <= now)
                if due and (cell[3] is None or job.run_at < cell[3]):
                    cell[3] = job.run_at
        return [
            TaskCounts(queue=q, task=t, pending=c[0], scheduled=c[1], running=c[2], waiting_since=c[3])
            for (q, t), c in sorted(cells.items())
        ]

    async def queue_get(self, *, queue: str) -> QueueSettings:
        state = self._queues.get(queue)
        return state.settings if state else QueueSettings(name=queue)

    async def queues_list(self) -> list[QueueSettings]:
        with self._lock:
            return [self._queues[name].settings for name in sorted(self._queues)]

    async def queue_update(
        self,
        *,
        queue: str,
        paused: bool = UNSET,
        concurrency: int | None = UNSET,
        rate_limit: RateLimit | None = UNSET,
    ) -> QueueSettings:
        with self._lock:
            state = self._queue(queue)
            old = state.settings
            state.settings = QueueSettings(
                name=queue,
                paused=old.paused if paused is UNSET else bool(paused),
                concurrency=old.concurrency if concurrency is UNSET else concurrency,
                rate_limit=old.rate_limit if rate_limit is UNSET else rate_limit,
            )
            settings = state.settings
        self._waker.notify()
        return settings

    # -- statistics --------------------------------------------------------------------------
    async def stats_record(self, *, rows: Sequence[StatsRow]) -> None:
        if not rows:
            return
        with self._lock:
            for row in rows:
                cell = self._stats.setdefault((row.minute, row.queue, row.task), [0, 0, {}])
                cell[0] += row.completed
                cell[1] += row.failed
                for i, n in enumerate(row.latency):
                    if n:
                        cell[2][i] = cell[2].get(i, 0) + n
            oldest = max(r.minute for r in rows) - STATS_RETENTION
            for key in [k for k in self._stats if k[0] < oldest]:
                del self._stats[key]

    async def stats_read(self, *, since: datetime, bin_minutes: int = 1) -> list[StatsRow]:
        with self._lock:
            rows = [
                StatsRow(minute=m, queue=q, task=t, completed=c[0], failed=c[1], latency=latency_histogram(c[2]))
                for (m, q, t), c in self._stats.items()
                if m >= since
            ]
        rows.sort(key=lambda r: (r.minute, r.queue, r.task))
        return stats_binned(rows, bin_minutes)

    async def stats_record_depth(self, *, rows: Sequence[DepthRow]) -> None:
        if not rows:
            return
        with self._lock:
            for row in rows:
                self._depth[(row.minute, row.queue)] = row.depth
            oldest = max(r.minute for r in rows) - STATS_RETENTION
            for key in [k for k in self._depth if k[0] < oldest]:
                del self._depth[key]

    async def stats_read_depth(self, *, since: datetime) -> list[DepthRow]:
        with self._lock:
            rows = [DepthRow(minute=m, queue=q, depth=d) for (m, q), d in self._depth.items() if m >= since]
        rows.sort(key=lambda r: (r.minute, r.queue))
        return rows
