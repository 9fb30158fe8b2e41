"""`DepthSampler`: samples the waiting-job count of every queue every few seconds into the
backend's statistics (`stats_record_depth`), so every replica's overview charts the same
queue depth, whether or not anyone is looking at the dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskyard.app import Taskyard
from taskyard.core.queue import DepthRow
from taskyard.services.periodic import PeriodicService, PeriodicServiceConfig

__all__ = ("DepthSampler",)


class DepthSampler(PeriodicService):
    """Every `interval` seconds (default 10): each queue's pending jobs, written as the
    minute's peak so far (a backlog that drained within the minute still shows).

    Every process serving the dashboard runs one; their writes replace each other with the
    store's own counts, so no lease is needed."""

    default_id = "depth-sampler"

    def __init__(self, app: Taskyard, *, interval: float = 10.0, **kwargs: Any) -> None:
        super().__init__(config=PeriodicServiceConfig(interval=interval, run_on_start=True, max_consecutive_failures=0), **kwargs)
        self.app = app
        self._minute: datetime | None = None
        self._peaks: dict[str, int] = {}

    async def execute(self) -> None:
        counts = await self.app.acounts()
        minute = self.app.clock.now().replace(second=0, microsecond=0)
        if minute != self._minute:
            self._minute, self._peaks = minute, {}
        for queue, per in counts.items():
            self._peaks[queue] = max(self._peaks.get(queue, 0), per.get("pending", 0))
        await self.app.backend.stats_record_depth(
            rows=[DepthRow(minute=minute, queue=q, depth=d) for q, d in sorted(self._peaks.items())]
        )
