"""Clocks: the `Clock` protocol, the system clock, and `FakeClock` for tests.

A leaf module: everything time-dependent in taskyard takes a clock so tests can control it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ("Clock", "FakeClock", "SystemClock", "utcnow")


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Clock(Protocol):
    """Where time comes from."""

    def now(self) -> datetime:
        """Wall-clock time, aware, in UTC."""
        ...

    def backend_now(self) -> datetime | None:
        """The `now` to give a backend where times written by several machines are compared
        (claims, lease renewals, rescues): None lets the store judge by its own clock (the
        system clock's answer), a fake clock passes its own time so tests stay in control."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def backend_now(self) -> datetime | None:
        # This machine's clock may be skewed from the others': the store's clock is the one
        # every process shares.
        return None

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to; `sleep` returns once time is advanced past it."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock start must be timezone-aware")
        self._mono = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def backend_now(self) -> datetime | None:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def set(self, when: datetime) -> None:
        """Jump to `when` (forward only)."""
        delta = (when - self._now).total_seconds()
        if delta < 0:
            raise ValueError("FakeClock cannot go backwards")
        self.advance(delta)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake the sleepers whose time has come."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        due = [s for s in self._sleepers if s[0] <= self._mono]
        self._sleepers = [s for s in self._sleepers if s[0] > self._mono]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, fut))
        await fut
