"""`Rescuer`: running jobs whose lease expired (their worker died) go back to pending, or to
failed when that was their last attempt.
"""

from __future__ import annotations

import logging
from typing import Any

from taskyard.backends.protocol import Backend
from taskyard.core.job import RescueReport
from taskyard.services.periodic import PeriodicService

__all__ = ("Rescuer",)

log = logging.getLogger("taskyard.maintenance")


class Rescuer(PeriodicService):
    """Leader-only: `jobs_rescue_expired` every few seconds."""

    default_id = "rescuer"

    def __init__(self, backend: Backend, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend = backend
        self.last_report = RescueReport()

    async def execute(self) -> None:
        report = await self.backend.jobs_rescue_expired(now=self.clock.now())
        self.last_report = report
        if report.rescued or report.failed:
            log.warning(
                "rescued %d job(s) with expired leases; %d ran out of attempts",
                len(report.rescued), len(report.failed), extra={"service_id": self.id},
            )
