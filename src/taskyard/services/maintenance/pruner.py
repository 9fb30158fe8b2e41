"""`Pruner`: deletes finished jobs beyond their retention (keep the last N and/or a max age),
globally and per queue."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from taskyard.backends.protocol import Backend
from taskyard.core.retention import Retention, parse_retention, prune_steps
from taskyard.services.periodic import PeriodicService
from taskyard.services.store_clock import StoreClock

__all__ = ("Pruner", "Retention")

log = logging.getLogger("taskyard.maintenance")


class Pruner(PeriodicService):
    """Leader-only: `jobs_prune` per finished status, and per queue with rules of its own
    (`queue_retention`, queue → status → rule), which replace the global rule in that queue."""

    default_id = "pruner"

    def __init__(
        self,
        backend: Backend,
        *,
        retention: Mapping[str, Retention],
        queue_retention: Mapping[str, Mapping[str, Retention]] | None = None,
        workflow_retention: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backend = backend
        self.steps = prune_steps(
            parse_retention(retention),
            {queue: parse_retention(rules) for queue, rules in (queue_retention or {}).items()},
        )
        self.workflow_retention = workflow_retention
        self.deleted = 0

    async def execute(self) -> None:
        now = await StoreClock(self.clock).refresh(self.backend)  # finished_at is the store's time
        for step in self.steps:
            rule = step.rule
            older = now - timedelta(seconds=rule.max_age) if rule.max_age is not None else None
            count = await self.backend.jobs_prune(
                status=step.status, keep_last=rule.keep_last, older_than=older,
                queue=step.queue, exclude_queues=step.exclude_queues,
            )
            if count:
                self.deleted += count
                where = f" in queue {step.queue!r}" if step.queue else ""
                log.info(
                    "pruned %d %s job(s)%s", count, step.status.value, where,
                    extra={"service_id": self.id},
                )
        if self.workflow_retention is not None:
            cut = now - timedelta(seconds=self.workflow_retention)
            workflows = await self.backend.workflows_prune(finished_before=cut)
            if workflows:
                log.info("pruned %d finished workflow(s) with their steps", workflows, extra={"service_id": self.id})
