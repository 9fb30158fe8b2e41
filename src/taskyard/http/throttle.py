"""`FailureThrottle`: a token bucket per client address that failed authentication, so a
caller guessing tokens or keys gets 429 (with Retry-After) after a burst of failures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ("FailureThrottle",)


class FailureThrottle:
    """Each client address has a bucket of `burst` failures, refilled at `burst` per `window`
    seconds. A failure takes one; with less than one left the address is throttled until the
    bucket refills enough. Successful calls cost nothing. In-process: replicas count apart.
    """

    #: Addresses tracked at most; past it, full (forgiven) buckets and then the oldest go.
    MAX_ADDRESSES = 10_000

    def __init__(
        self, *, burst: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if burst < 1 or window <= 0:
            raise ValueError("burst must be >= 1 and window > 0")
        self.burst = float(burst)
        self.rate = burst / window
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, at)

    def _level(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def retry_after(self, address: str) -> int | None:
        """Seconds `address` must wait before its next attempt, or None when it may try now."""
        now = self._clock()
        level = self._level(address, now)
        if level >= 1:
            return None
        return max(1, math.ceil((1 - level) / self.rate))

    def failed(self, address: str) -> None:
        """Count one failed attempt from `address`."""
        now = self._clock()
        level = self._level(address, now)
        self._buckets.pop(address, None)  # re-insert last: the dict stays oldest-first
        self._buckets[address] = (max(0.0, level - 1), now)
        if len(self._buckets) > self.MAX_ADDRESSES:
            self._prune(now)

    def _prune(self, now: float) -> None:
        for address in [a for a in self._buckets if self._level(a, now) >= self.burst]:
            del self._buckets[address]
        while len(self._buckets) > self.MAX_ADDRESSES:
            del self._buckets[next(iter(self._buckets))]
