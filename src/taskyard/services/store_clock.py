"""`StoreClock`: the store's time as a service sees it, for times written by several machines.

PostgreSQL and Redis have a clock every process shares (`Backend.store_time()`); a service
reads it now and then and keeps the offset from its own clock, so a machine whose clock is
off neither fires schedules early nor writes retry times, heartbeats or stats minutes in its
own skewed time. SQLite and memory have no clock of their own: the offset stays 0. A
`FakeClock` (tests) is used as is.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from taskyard.backends.protocol import Backend
from taskyard.clock import Clock

__all__ = ("StoreClock",)


class StoreClock:
    """This process's clock corrected by the store's, refreshed by `refresh()`."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.offset = timedelta(0)  # the store's clock minus this process's, at the last refresh

    async def refresh(self, backend: Backend) -> datetime:
        """Read the store's clock (one round trip) and return the corrected time now."""
        fake = self.clock.backend_now()
        if fake is not None:
            return fake  # a FakeClock: tests stay in control
        before = self.clock.now()
        store = await backend.store_time()
        after = self.clock.now()
        # The store read its clock somewhere in the round trip: the middle is the best guess
        # (taking `before` put the estimate ahead by a whole round trip, tens of ms when busy).
        local = before + (after - before) / 2
        self.offset = timedelta(0) if store is None else store - local
        return after + self.offset

    def now(self) -> datetime:
        """The corrected time, from the last refresh's offset (no I/O)."""
        fake = self.clock.backend_now()
        return fake if fake is not None else self.clock.now() + self.offset
