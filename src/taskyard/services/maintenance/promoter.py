"""`Promoter`: scheduled jobs whose time has come become pending (claims also take due
scheduled jobs directly; this keeps the counts and the dashboard exact).
"""

from __future__ import annotations

from typing import Any

from taskyard.backends.protocol import Backend
from taskyard.services.periodic import PeriodicService

__all__ = ("Promoter",)


class Promoter(PeriodicService):
    """Leader-only: `jobs_promote_due` every second."""

    default_id = "promoter"

    def __init__(self, backend: Backend, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend = backend

    async def execute(self) -> None:
        # The store's clock decides what is due (see Clock.backend_now), not this machine's.
        await self.backend.jobs_promote_due(now=self.clock.backend_now())
