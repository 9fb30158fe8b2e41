"""`RunStats`: a worker's per-minute counts of completed and failed jobs by queue, kept in
memory and written to the store in one batch (the heartbeat flushes them)."""

from __future__ import annotations

import logging
from datetime import datetime

from taskyard.backends.protocol import Backend
from taskyard.core.queue import StatsRow
from taskyard.services.store_clock import StoreClock

__all__ = ("RunStats",)

log = logging.getLogger("taskyard.worker")


class RunStats:
    """Counts by (minute of the store's clock, queue), until `flush` writes them."""

    def __init__(self, store_clock: StoreClock) -> None:
        self.store_clock = store_clock
        self._cells: dict[tuple[datetime, str], list[int]] = {}

    def count(self, queue: str, *, completed: int = 0, failed: int = 0) -> None:
        """Add runs of `queue` that ended now."""
        minute = self.store_clock.now().replace(second=0, microsecond=0)
        cell = self._cells.setdefault((minute, queue), [0, 0])
        cell[0] += completed
        cell[1] += failed

    async def flush(self, backend: Backend) -> None:
        """Write the counts collected since the last flush (a failed write is logged and those
        counts are dropped)."""
        if not self._cells:
            return
        rows = [StatsRow(minute=m, queue=q, completed=c[0], failed=c[1]) for (m, q), c in self._cells.items()]
        self._cells = {}
        try:
            await backend.stats_record(rows=rows)
        except Exception as exc:
            log.warning("could not record statistics: %s", exc)
