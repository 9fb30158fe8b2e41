"""`Notifier`: where alert events go; `LogNotifier`, the one that is always on."""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from taskyard.core.alert import AlertEvent, AlertState

__all__ = ("LogNotifier", "Notifier")

log = logging.getLogger("taskyard.alerts")


@runtime_checkable
class Notifier(Protocol):
    """Delivers alert events. `notify` may raise; the alerter logs it and goes on."""

    name: str

    async def notify(self, event: AlertEvent) -> None:
        """Deliver one fire or resolve event."""
        ...


class LogNotifier:
    """A WARNING line when an alert fires, an INFO line when it resolves."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log

    async def notify(self, event: AlertEvent) -> None:
        level = logging.WARNING if event.state is AlertState.FIRING else logging.INFO
        self.log.log(
            level, "alert %s", event.summary(),
            extra={"alert": event.name, "alert_state": event.state.value},
        )
