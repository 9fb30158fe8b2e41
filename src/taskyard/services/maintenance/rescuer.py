"""`Rescuer`: running jobs whose lease expired (their worker died) go back to pending without
using an attempt, or to failed once their worker was lost more than `max_rescues` times.
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
    """`jobs_rescue_expired` every few seconds: leader-only in the maintenance role, and
    without a leader beside every worker (`build_worker_rescuer`); the backend's conditional
    writes make concurrent rescuers safe."""

    default_id = "rescuer"

    def __init__(self, backend: Backend, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend = backend
        self.last_report = RescueReport()

    async def execute(self) -> None:
        # The store's clock judges expiry (see Clock.backend_now): a rescuer whose own clock
        # runs ahead must not take live jobs.
        report = await self.backend.jobs_rescue_expired(now=self.clock.backend_now())
        self.last_report = report
        if report.rescued or report.failed:
            log.warning(
                "rescued %d job(s) with expired leases; %d failed, their worker lost too often",
                len(report.rescued), len(report.failed), extra={"service_id": self.id},
            )
