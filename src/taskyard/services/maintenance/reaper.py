"""`Reaper`: removes workers that stopped heartbeating from the registry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from taskyard.backends.protocol import Backend
from taskyard.services.periodic import PeriodicService
from taskyard.services.store_clock import StoreClock

__all__ = ("Reaper",)


class Reaper(PeriodicService):
    """Leader-only: `workers_prune` for workers silent longer than `worker_timeout` seconds."""

    default_id = "reaper"

    def __init__(self, backend: Backend, *, worker_timeout: float = 120.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend = backend
        self.worker_timeout = worker_timeout

    async def execute(self) -> None:
        # Heartbeats are written in the store's time: a leader whose clock runs ahead must
        # not take live workers for dead ones.
        now = await StoreClock(self.clock).refresh(self.backend)
        await self.backend.workers_prune(older_than=now - timedelta(seconds=self.worker_timeout))
