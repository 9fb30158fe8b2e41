"""`DepthSampler`: samples the waiting-job count every few seconds for the overview's
queue-depth chart, whether or not anyone is looking at the dashboard."""

from __future__ import annotations

from typing import Any

from taskyard.app import Taskyard
from taskyard.http.dashboard.charts import DepthHistory
from taskyard.services.periodic import PeriodicService, PeriodicServiceConfig

__all__ = ("DepthSampler",)


class DepthSampler(PeriodicService):
    """Every `interval` seconds (default 10): the pending jobs of every queue into `history`.

    The backends keep no depth history, so the chart covers the time this process has run.
    """

    default_id = "depth-sampler"

    def __init__(self, app: Taskyard, history: DepthHistory, *, interval: float = 10.0, **kwargs: Any) -> None:
        super().__init__(config=PeriodicServiceConfig(interval=interval, run_on_start=True, max_consecutive_failures=0), **kwargs)
        self.app = app
        self.history = history

    async def execute(self) -> None:
        counts = await self.app.acounts()
        self.history.record(self.app.clock.now(), sum(q.get("pending", 0) for q in counts.values()))
