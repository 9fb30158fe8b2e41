"""`ServiceHistory`: the last status changes of each service of this process, kept in memory
from the service manager's events for the services page."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

from taskyard.services.base import ServiceEvent

__all__ = ("KEPT", "ServiceHistory", "StatusChange")

#: Status changes kept per service.
KEPT = 20


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A service entered `status` at `at` (with `error` when it is ERROR)."""

    status: str
    at: datetime
    error: str | None = None


class ServiceHistory:
    """Feed it the manager's events (`manager.subscribe(history.record)`); read `of(id)`."""

    def __init__(self) -> None:
        self._changes: dict[str, deque[StatusChange]] = {}

    def record(self, event: ServiceEvent) -> None:
        """Keep a status change; runs are not status changes and are ignored."""
        if event.kind != "status":
            return
        kept = self._changes.setdefault(event.service_id, deque(maxlen=KEPT))
        kept.append(StatusChange(status=event.status.value, at=event.at, error=event.error))

    def of(self, service_id: str) -> list[StatusChange]:
        """The service's kept changes, oldest first."""
        return list(self._changes.get(service_id, ()))
