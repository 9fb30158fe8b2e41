"""`Pruner`: deletes finished jobs beyond their retention (keep the last N and/or a max age)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from taskyard.backends.protocol import Backend
from taskyard.core.job import FINISHED_STATUSES, JobStatus
from taskyard.services.periodic import PeriodicService
from taskyard.services.store_clock import StoreClock

__all__ = ("Pruner", "Retention")

log = logging.getLogger("taskyard.maintenance")


@dataclass(frozen=True, slots=True)
class Retention:
    """Keep at most `keep_last` jobs of a status and none older than `max_age` seconds
    (None = no limit of that kind)."""

    keep_last: int | None = None
    max_age: float | None = None

    def __post_init__(self) -> None:
        if self.keep_last is not None and self.keep_last < 0:
            raise ValueError("retention keep_last must be >= 0")
        if self.max_age is not None and self.max_age <= 0:
            raise ValueError("retention max_age must be > 0 seconds")


class Pruner(PeriodicService):
    """Leader-only: `jobs_prune` per finished status."""

    default_id = "pruner"

    def __init__(self, backend: Backend, *, retention: Mapping[str, Retention], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend = backend
        self.retention: dict[JobStatus, Retention] = {}
        for status, rule in retention.items():
            parsed = JobStatus(status)
            if parsed not in FINISHED_STATUSES:
                raise ValueError(f"retention applies to finished statuses only, not {status!r}")
            self.retention[parsed] = rule
        self.deleted = 0

    async def execute(self) -> None:
        now = await StoreClock(self.clock).refresh(self.backend)  # finished_at is the store's time
        for status, rule in self.retention.items():
            if rule.keep_last is None and rule.max_age is None:
                continue
            older = now - timedelta(seconds=rule.max_age) if rule.max_age is not None else None
            count = await self.backend.jobs_prune(status=status, keep_last=rule.keep_last, older_than=older)
            if count:
                self.deleted += count
                log.info("pruned %d %s job(s)", count, status.value, extra={"service_id": self.id})
