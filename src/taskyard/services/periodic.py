"""`PeriodicService`: runs `execute()` on an interval or a cron expression.

The base class owns the loop, jitter, timeout, retries, the leadership check and the metrics;
a subclass writes only `async def execute(self)`. Runs never overlap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskyard.config import option_key
from taskyard.core.retry import Retry
from taskyard.services.base import LeaseHolder, Service, ServiceError

__all__ = ("OPTION_NAMES", "PeriodicService", "PeriodicServiceConfig")

log = logging.getLogger("taskyard.service")


@dataclass(frozen=True, slots=True)
class PeriodicServiceConfig:
    """When and how a periodic service runs.

    `interval` is seconds (float) or a cron expression (str, 5 or 6 fields, UTC).
    `retry` retries a failed `execute()` within the same tick. `batch_size` and
    `max_concurrency` are hints for `execute()` (the seed's `batchSize` and
    `maxConcurrentImports`); the base class does not use them. After
    `max_consecutive_failures` failed runs in a row (0: never) the service goes to ERROR,
    where the manager restarts it if it is critical.
    """

    interval: float | str = 60.0
    timeout: float | None = None
    retry: Retry = field(default_factory=Retry)
    jitter: float = 0.0
    run_on_start: bool = False
    leader_only: bool = False
    batch_size: int = 100
    max_concurrency: int = 1
    max_consecutive_failures: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.interval, str):
            from taskyard.core import cron  # a bad expression fails here, not at the first tick

            cron.validate_service_interval(self.interval)
        elif isinstance(self.interval, bool) or not isinstance(self.interval, int | float):
            raise ValueError(f"interval must be seconds or a cron expression, not {self.interval!r}")
        elif self.interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, not {self.interval!r}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, not {self.timeout!r}")
        if self.jitter < 0:
            raise ValueError("jitter must be >= 0 seconds")
        if self.batch_size < 1 or self.max_concurrency < 1:
            raise ValueError("batch_size and max_concurrency must be >= 1")
        if isinstance(self.max_consecutive_failures, bool) or not isinstance(self.max_consecutive_failures, int):
            raise ValueError(f"max_consecutive_failures must be an integer, not {self.max_consecutive_failures!r}")
        if self.max_consecutive_failures < 0:
            raise ValueError("max_consecutive_failures must be >= 0 (0: never)")

    def with_options(self, options: Mapping[str, Any]) -> tuple[PeriodicServiceConfig, dict[str, Any]]:
        """This config updated from a settings mapping, and the keys it does not know.

        Keys (case, `_` and `-` do not count: `batchSize`, `batch_size`, `BATCHSIZE` are
        one): `interval` (seconds or cron), `timeout` (seconds), `jitter`, `retries` (extra
        attempts per tick), `run_on_start`, `leader_only`, `batch_size`, `max_concurrency`
        (or the seed's `maxConcurrentImports`), `max_consecutive_failures`. Raises
        ValueError naming the key.
        """
        changes: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        written: dict[str, str] = {}
        for key, value in options.items():
            name = _OPTIONS.get(option_key(key))
            if name is None:
                extra[key] = value
                continue
            if name in written or (name == "retries" and "retry" in changes):
                raise ValueError(f"{key}: the same option as {written[name]!r}; keep one")
            written[name] = key
            if name == "retries":
                if isinstance(value, str) and value.isdigit():
                    value = int(value)
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{key}: must be an integer >= 0, not {value!r}")
                changes["retry"] = Retry(attempts=value + 1, backoff=self.retry.backoff)
            else:
                changes[name] = _coerce(name, value)
        for name, value in changes.items():
            try:
                dataclasses.replace(self, **{name: value})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{written.get(name, name)}: {exc}") from None
        return dataclasses.replace(self, **changes), extra


#: The options `with_options` reads, as users see them.
OPTION_NAMES = (
    "interval", "timeout", "jitter", "retries", "run_on_start", "leader_only", "batch_size",
    "max_concurrency", "max_consecutive_failures",
)
#: `option_key` of every spelling → the option (the seed's `maxConcurrentImports` too).
_OPTIONS = {option_key(name): name for name in OPTION_NAMES} | {
    option_key("maxConcurrentImports"): "max_concurrency",
}
_INTS = ("batch_size", "max_concurrency", "max_consecutive_failures")


def _coerce(name: str, value: Any) -> Any:
    """Environment variables arrive as strings: numbers become numbers, cron stays text."""
    if not isinstance(value, str):
        return value
    if name in ("interval", "timeout", "jitter"):
        try:
            return float(value)
        except ValueError:
            return value
    if name in _INTS and value.isdigit():
        return int(value)
    if name in ("run_on_start", "leader_only") and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return value


class PeriodicService(Service):
    """A service whose work is one `execute()` per tick."""

    def __init__(
        self,
        service_id: str | None = None,
        *,
        config: PeriodicServiceConfig | None = None,
        leader: LeaseHolder | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(service_id, **kwargs)  # type: ignore[arg-type]
        self.config = config or PeriodicServiceConfig()
        self.leader = leader  # a LeaderElector; checked each tick when `leader_only`
        self._wake = asyncio.Event()
        self._run_lock = asyncio.Lock()

    def apply_options(self, options: Mapping[str, Any]) -> None:
        """Update `config` from settings (see `PeriodicServiceConfig.with_options`); the
        keys it does not know must be in `extra_options` and land in `self.options` for
        `execute()` to read (`UnknownOptionError` otherwise)."""
        config, extra = self.config.with_options(options)
        super().apply_options(extra)
        self.config = config

    def option_names(self) -> list[str]:
        """The config's options and the service's `extra_options`."""
        return [*OPTION_NAMES, *super().option_names()]

    async def execute(self) -> None:
        """One run of the service's work."""
        raise NotImplementedError

    def next_delay(self, now: datetime) -> float:
        """Seconds until the next tick."""
        interval = self.config.interval
        if isinstance(interval, str):
            from taskyard.core import cron

            delay = (cron.next_service_tick(interval, now) - now).total_seconds()
        else:
            delay = float(interval)
        if self.config.jitter:
            delay += random.uniform(0, self.config.jitter)  # noqa: S311 - jitter, no secret
        return max(delay, 0.0)

    def trigger(self) -> None:
        """Run at once instead of waiting for the next tick ("run now")."""
        self._wake.set()

    def is_leader(self) -> bool:
        return self.leader is None or self.leader.is_leader

    async def run(self) -> None:
        first = True
        failures_in_row = 0  # since this start: a restarted service gets a fresh count
        while not self.stopping.is_set():
            if not (first and self.config.run_on_start) and await self.sleep(
                self.next_delay(self.clock.now()), wake=self._wake
            ):
                return
            first = False
            await self.wait_resumed()
            if self.stopping.is_set():
                return
            if self.config.leader_only and not self.is_leader():
                self._signal("tick")
                continue
            failures_in_row = 0 if await self.run_once() else failures_in_row + 1
            self._signal("tick")
            limit = self.config.max_consecutive_failures
            if limit and failures_in_row >= limit and not self.stopping.is_set():
                raise ServiceError(
                    f"{failures_in_row} runs failed in a row (max_consecutive_failures={limit}); "
                    f"last: {self.metrics_data.last_error}"
                )

    def health(self) -> dict[str, Any]:
        """The base health, with `details`: the config it runs with (never `options`, which
        may hold secrets)."""
        c = self.config
        return super().health() | {
            "details": {
                "interval": c.interval, "timeout": c.timeout, "jitter": c.jitter,
                "retries": c.retry.attempts - 1, "run_on_start": c.run_on_start,
                "leader_only": c.leader_only, "batch_size": c.batch_size,
                "max_concurrency": c.max_concurrency,
                "max_consecutive_failures": c.max_consecutive_failures,
                "consecutive_failures": self.metrics_data.consecutive_failures,
            }
        }

    async def run_once(self) -> bool:
        """One tick: `execute()` with timeout and retries, counted in the metrics.
        Returns True on success. Never raises (errors are recorded).
        """
        async with self._run_lock:
            started = self.monotonic()
            attempt = 0
            while True:
                attempt += 1
                try:
                    await asyncio.wait_for(self.execute(), self.config.timeout)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    error = (
                        f"timed out after {self.config.timeout}s"
                        if isinstance(exc, TimeoutError)
                        else f"{type(exc).__name__}: {exc}"
                    )
                    delay = self.config.retry.delay_after(attempt)
                    if delay is not None and not self.stopping.is_set():
                        log.warning(
                            "service run failed, retrying in %.1fs: %s", delay, error,
                            extra={"service_id": self.id},
                        )
                        if await self.sleep(delay):
                            return False
                        continue
                    log.error("service run failed: %s", error, extra={"service_id": self.id})
                    self.record_run(ok=False, duration=self.monotonic() - started, error=error)
                    return False
                self.record_run(ok=True, duration=self.monotonic() - started)
                return True
