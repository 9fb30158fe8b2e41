"""`LeaderElector`: holds (or waits for) the cluster's leadership lease in the backend.

State model: a follower tries to acquire every `ttl / 3` seconds; the leader renews at the
same pace. `is_leader` is True only while the last successful renewal is younger than the
TTL minus a safety margin, so a leader that cannot reach the backend steps down before its
lease can expire and a successor take over. `stop()` resigns, so a successor takes over at once.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from typing import Any

from taskyard.backends.protocol import Backend
from taskyard.core import ids
from taskyard.services.base import Service

__all__ = ("DUTY_LEASES", "LeaderElector", "holder_pid", "known_leases", "service_lease")

#: The leases of the built-in leader-only duties; each user service marked `leader_only`
#: has its own, `service_lease(id)`. A process competes only for the duties it runs.
DUTY_LEASES = ("scheduler", "maintenance", "alerter")


def service_lease(service_id: str) -> str:
    """The lease name of a leader-only user service."""
    return f"service:{service_id}"


def known_leases(service_ids: Iterable[str]) -> list[str]:
    """Every lease a cluster of this app may hold: the built-in duties' and each user service's."""
    return [*DUTY_LEASES, *(service_lease(i) for i in service_ids)]


def holder_pid(holder: str) -> tuple[str, int | None]:
    """`(host, pid)` from a holder id `host:pid:suffix` (pid None when it is not one of ours)."""
    parts = holder.split(":")
    if len(parts) >= 3 and parts[-2].isdigit():
        return ":".join(parts[:-2]), int(parts[-2])
    return holder, None

log = logging.getLogger("taskyard.leader")


class LeaderElector(Service):
    """Elects one leader per lease `name` among every process sharing a backend."""

    default_id = "leader"
    pausable = False  # a leader that stopped renewing would lose its lease, not pause it

    def __init__(
        self,
        backend: Backend,
        *,
        name: str = "default",
        ttl: float = 15.0,
        holder: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if ttl <= 0:
            raise ValueError("leader ttl must be > 0 seconds")
        self.backend = backend
        self.lease_name = name
        self.ttl = ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{ids.new_id()[-6:]}"
        self._held_until: float | None = None  # monotonic deadline of our lease, minus margin
        self.changes = 0

    @property
    def is_leader(self) -> bool:
        """True while this process holds a lease that cannot have expired yet."""
        return self._held_until is not None and self.monotonic() < self._held_until

    def lease(self) -> dict[str, Any] | None:
        """This elector's lease: `{name, leader, holder}` (the holder id this process uses)."""
        return {"name": self.lease_name, "leader": self.is_leader, "holder": self.holder}

    async def attempt(self) -> bool:
        """Try to acquire or renew once; returns whether we lead."""
        started = self.monotonic()
        try:
            won = await self.backend.leader_attempt_elect(
                name=self.lease_name, holder=self.holder, ttl=self.ttl
            )
        except Exception as exc:
            log.warning("leader election failed: %s", exc, extra={"service_id": self.id})
            won = False
            self.record_run(ok=False, duration=self.monotonic() - started, error=str(exc))
        else:
            self.record_run(ok=True, duration=self.monotonic() - started)
        was = self.is_leader
        # The lease was granted at some point after `started`; count from `started` and keep a
        # margin of a tenth of the TTL so we step down before anyone else may step up.
        self._held_until = started + self.ttl * 0.9 if won else None
        if won != was:
            self.changes += 1
            log.info(
                "leadership %s (%s)", "acquired" if won else "lost", self.holder,
                extra={"service_id": self.id},
            )
        return won

    async def run(self) -> None:
        while not self.stopping.is_set():
            await self.attempt()
            if await self.sleep(self.ttl / 3):
                return

    async def on_stop(self) -> None:
        if self._held_until is not None:
            self._held_until = None
            try:
                await self.backend.leader_resign(name=self.lease_name, holder=self.holder)
            except Exception as exc:
                log.warning("could not resign leadership: %s", exc, extra={"service_id": self.id})
