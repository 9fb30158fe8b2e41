"""Retry policies: how many runs a job gets and how long to wait before each retry.

Pure: randomness is passed in, so tests can pin the delays.
"""

from __future__ import annotations

import random as _random
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ("Exponential", "Retry", "exponential")


@dataclass(frozen=True, slots=True)
class Exponential:
    """Delay before retry n (1-based) = base * factor**(n-1), capped at `max`."""

    base: float
    factor: float = 2.0
    max: float | None = None

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 1:
            raise ValueError("exponential backoff needs base >= 0 and factor >= 1")
        if self.max is not None and self.max < 0:
            raise ValueError("exponential backoff max must be >= 0")

    def delay(self, retry_number: int) -> float:
        value = self.base * self.factor ** (retry_number - 1)
        return min(value, self.max) if self.max is not None else value


def exponential(base: float, factor: float = 2.0, max: float | None = None) -> Exponential:
    """Exponential backoff: `exponential(2)` waits 2 s, 4 s, 8 s, ..."""
    return Exponential(base=base, factor=factor, max=max)


@dataclass(frozen=True, slots=True)
class Retry:
    """A task's retry policy.

    `attempts` counts every run, the first included (attempts=4 = one run + 3 retries).
    `backoff` is either a list (`backoff[i]` is the delay in seconds before retry i+1; the last
    one repeats) or `exponential(...)`. `jitter` adds a random 0..jitter seconds to each delay.
    Exceptions in `non_retryable` fail the job at once.
    """

    attempts: int = 1
    backoff: Sequence[float] | Exponential = field(default_factory=lambda: (0.0,))
    jitter: float = 0.0
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry(attempts=...) counts every run and must be >= 1")
        if self.jitter < 0:
            raise ValueError("Retry(jitter=...) must be >= 0")
        if not isinstance(self.backoff, Exponential):
            delays = tuple(float(d) for d in self.backoff)
            if not delays or any(d < 0 for d in delays):
                raise ValueError("Retry(backoff=[...]) needs at least one delay, none negative")
            object.__setattr__(self, "backoff", delays)

    def base_delay(self, retry_number: int) -> float:
        """Delay before retry `retry_number` (1 = the first retry), without jitter."""
        if retry_number < 1:
            raise ValueError("retry_number starts at 1")
        if isinstance(self.backoff, Exponential):
            return self.backoff.delay(retry_number)
        delays = self.backoff
        return delays[min(retry_number - 1, len(delays) - 1)]

    def delay_after(self, attempt: int, rng: _random.Random | None = None) -> float | None:
        """Seconds to wait after failed run `attempt` (1-based), or None when none are left."""
        if attempt >= self.attempts:
            return None
        delay = self.base_delay(attempt)
        if self.jitter:
            delay += (rng or _random).uniform(0, self.jitter)
        return delay

    def is_retryable(self, exc: BaseException) -> bool:
        """False for exceptions the policy marks non-retryable."""
        return not isinstance(exc, self.non_retryable)
