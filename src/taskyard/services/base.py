"""`Service`: the one shape of everything long-running in a taskyard process.

Status machine `STOPPED → STARTING → RUNNING ⇄ PAUSED`, and `ERROR` when the main loop dies.
A service owns its task; `stop()` is safe before `start()` and twice. Subscribers get a
`ServiceEvent` on every status change and every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from taskyard.clock import Clock, SystemClock
from taskyard.config import option_key
from taskyard.errors import InvalidTransitionError
from taskyard.services.testsignals import TestSignals

__all__ = (
    "LeaseHolder",
    "Service",
    "ServiceError",
    "ServiceEvent",
    "ServiceMetrics",
    "ServiceStatus",
    "UnknownOptionError",
)

log = logging.getLogger("taskyard.service")


class ServiceStatus(enum.StrEnum):
    """Where a service is in its life."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    ERROR = "ERROR"


class ServiceError(Exception):
    """Raised by a main loop to put its service in ERROR with this message (logged without
    a traceback: the message says it all, e.g. too many failed runs in a row)."""


class UnknownOptionError(ValueError):
    """A settings option the service does not read: `option` as written, the `suggestion`
    (the near miss, if any) and every `known` option."""

    def __init__(self, option: str, known: list[str]) -> None:
        self.option = option
        self.known = known
        by_key = {option_key(name): name for name in known}
        close = difflib.get_close_matches(option_key(option), list(by_key), n=1, cutoff=0.6)
        self.suggestion = by_key[close[0]] if close else None
        hint = f"; did you mean {self.suggestion!r}?" if self.suggestion else ""
        super().__init__(f"{option}: unknown option{hint} (known: {', '.join(known) or 'none'})")


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    """A status change (`kind="status"`) or a finished run (`kind="run"`) of a service."""

    service_id: str
    kind: str
    status: ServiceStatus
    at: datetime
    ok: bool | None = None
    duration: float | None = None
    error: str | None = None


@dataclass(slots=True)
class ServiceMetrics:
    """Run counters of a service."""

    runs: int = 0
    successes: int = 0
    failures: int = 0
    #: Failed runs since the last success.
    consecutive_failures: int = 0
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_duration: float | None = None
    total_duration: float = 0.0
    last_error: str | None = None

    @property
    def success_rate(self) -> float | None:
        """Successes / runs, or None before the first run."""
        return self.successes / self.runs if self.runs else None

    @property
    def mean_duration(self) -> float | None:
        return self.total_duration / self.runs if self.runs else None

    def to_json(self) -> dict[str, Any]:
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {
            "runs": self.runs,
            "successes": self.successes,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "success_rate": self.success_rate,
            "last_run_at": iso(self.last_run_at),
            "last_success_at": iso(self.last_success_at),
            "last_failure_at": iso(self.last_failure_at),
            "last_duration": self.last_duration,
            "mean_duration": self.mean_duration,
            "last_error": self.last_error,
        }


class LeaseHolder(Protocol):
    """What a service needs of the leader elector that gates it (a `LeaderElector`)."""

    lease_name: str
    holder: str

    @property
    def is_leader(self) -> bool:
        """True while this process holds the lease."""
        ...


@dataclass(slots=True)
class _Listeners:
    callbacks: list[Callable[[ServiceEvent], None]] = field(default_factory=list)


class Service:
    """Base class of long-running work. Subclasses override `run()` (the main loop), and
    optionally `on_start()` / `on_stop()`; a main loop checks `self.stopping` and calls
    `await self.wait_resumed()` where it may pause.
    """

    #: Default id when none is given to the constructor.
    default_id: str = "service"
    #: False for a service whose main loop has nothing to hold (the HTTP server, the leader
    #: elector): `pause()` refuses instead of showing PAUSED while it carries on.
    pausable: bool = True
    #: The elector of the lease this service competes for (leader-only duties), else None.
    leader: LeaseHolder | None = None
    #: Options this service reads from `self.options` (beyond its config's, for a periodic
    #: service); settings naming any other option are refused at start.
    extra_options: tuple[str, ...] = ()

    def __init__(self, service_id: str | None = None, *, name: str | None = None, clock: Clock | None = None):
        self.id = service_id or self.default_id
        self.name = name or self.id
        self.clock: Clock = clock or SystemClock()
        self.status = ServiceStatus.STOPPED
        self.error: str | None = None
        self.metrics_data = ServiceMetrics()
        self.stopping = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._task: asyncio.Task[None] | None = None
        self._listeners = _Listeners()
        #: Options from settings (`[services.<id>]`) that the service reads itself.
        self.options: dict[str, Any] = {}
        #: Set by tests to a `TestSignals` to wait on what the service did; None otherwise.
        self.signals: TestSignals | None = None

    def apply_options(self, options: Mapping[str, Any]) -> None:
        """Take options from settings: each must be one of `extra_options` (compared as
        `option_key` does, stored under the declared spelling), else `UnknownOptionError`.
        Subclasses take theirs first and validate them (raising ValueError naming the key)."""
        declared = {option_key(name): name for name in self.extra_options}
        for key, value in options.items():
            name = declared.get(option_key(key))
            if name is None:
                raise UnknownOptionError(key, self.option_names())
            self.options[name] = value

    def option_names(self) -> list[str]:
        """Every option this service accepts from settings."""
        return list(self.extra_options)

    # -- events ------------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[ServiceEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` on every status change and run; returns an unsubscribe."""
        self._listeners.callbacks.append(callback)
        return lambda: self._listeners.callbacks.remove(callback)

    def _emit(self, event: ServiceEvent) -> None:
        for callback in list(self._listeners.callbacks):
            try:
                callback(event)
            except Exception:  # a broken listener must not break the service
                log.exception("service event listener failed", extra={"service_id": self.id})

    def _signal(self, name: str) -> None:
        if self.signals is not None:
            self.signals.record(name)

    def _set_status(self, status: ServiceStatus, error: str | None = None) -> None:
        if status is self.status and error == self.error:
            return
        self.status = status
        self.error = error
        self._emit(ServiceEvent(self.id, "status", status, self.clock.now(), error=error))

    # -- lifecycle ---------------------------------------------------------------------------
    async def on_start(self) -> None:
        """Prepare (open connections...). Raising puts the service in ERROR."""

    async def run(self) -> None:
        """The main loop; return when `self.stopping` is set. The default waits for stop."""
        await self.stopping.wait()

    async def on_stop(self) -> None:
        """Clean up after the main loop has ended."""

    async def start(self) -> None:
        """STOPPED/ERROR → STARTING → RUNNING, with the main loop running as a task."""
        if self.status in (ServiceStatus.RUNNING, ServiceStatus.PAUSED, ServiceStatus.STARTING):
            return
        self.stopping = asyncio.Event()
        self._resumed.set()
        self._set_status(ServiceStatus.STARTING)
        try:
            await self.on_start()
        except Exception as exc:
            log.exception("service failed to start", extra={"service_id": self.id})
            self._set_status(ServiceStatus.ERROR, f"{type(exc).__name__}: {exc}")
            raise
        self._set_status(ServiceStatus.RUNNING)
        self._task = asyncio.create_task(self._main(), name=f"service:{self.id}")

    async def _main(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except ServiceError as exc:
            log.error("service failed: %s", exc, extra={"service_id": self.id})
            self._set_status(ServiceStatus.ERROR, str(exc))
            with contextlib.suppress(Exception):
                await self.on_stop()
        except Exception as exc:
            log.exception("service crashed", extra={"service_id": self.id})
            self._set_status(ServiceStatus.ERROR, f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await self.on_stop()

    async def stop(self, timeout: float | None = None) -> None:
        """Ask the main loop to end, wait up to `timeout` (then cancel it), clean up."""
        task, self._task = self._task, None
        if task is None:
            if self.status is not ServiceStatus.ERROR:
                self._set_status(ServiceStatus.STOPPED)
            return
        self.stopping.set()
        self._resumed.set()
        if not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        crashed = self.status is ServiceStatus.ERROR
        if not crashed:
            try:
                await self.on_stop()
            except Exception as exc:
                log.exception("service failed to stop cleanly", extra={"service_id": self.id})
                self._set_status(ServiceStatus.ERROR, f"{type(exc).__name__}: {exc}")
                return
            self._set_status(ServiceStatus.STOPPED)

    def pause(self) -> None:
        """RUNNING → PAUSED: the main loop holds at its next `wait_resumed()`.
        `InvalidTransitionError` for a service that cannot pause."""
        if not self.pausable:
            raise InvalidTransitionError(f"service {self.id!r} cannot be paused")
        if self.status is ServiceStatus.RUNNING:
            self._resumed.clear()
            self._set_status(ServiceStatus.PAUSED)

    def resume(self) -> None:
        """PAUSED → RUNNING."""
        if self.status is ServiceStatus.PAUSED:
            self._resumed.set()
            self._set_status(ServiceStatus.RUNNING)

    @property
    def is_paused(self) -> bool:
        return self.status is ServiceStatus.PAUSED

    async def wait_resumed(self) -> None:
        """Return at once unless paused; otherwise when resumed or stopping."""
        if self._resumed.is_set():
            return
        self._signal("held")
        stop = asyncio.ensure_future(self.stopping.wait())
        resumed = asyncio.ensure_future(self._resumed.wait())
        try:
            await asyncio.wait((stop, resumed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            resumed.cancel()

    async def sleep(self, seconds: float, *, wake: asyncio.Event | None = None) -> bool:
        """Sleep on the service's clock, or until `wake` is set (then cleared); returns True
        early when the service is stopping."""
        if self.stopping.is_set():
            return True
        waits = [asyncio.ensure_future(self.clock.sleep(seconds)),
                 asyncio.ensure_future(self.stopping.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if wake is not None:
            wake.clear()
        return self.stopping.is_set()

    # -- health and metrics ------------------------------------------------------------------
    def record_run(self, *, ok: bool, duration: float, error: str | None = None, emit: bool = True) -> None:
        """Count one run and (unless `emit` is False, for very frequent runs) tell subscribers."""
        now = self.clock.now()
        m = self.metrics_data
        m.runs += 1
        m.last_run_at = now
        m.last_duration = duration
        m.total_duration += duration
        if ok:
            m.successes += 1
            m.consecutive_failures = 0
            m.last_success_at = now
        else:
            m.failures += 1
            m.consecutive_failures += 1
            m.last_failure_at = now
            m.last_error = error
        if emit:
            self._emit(ServiceEvent(self.id, "run", self.status, now, ok=ok, duration=duration, error=error))

    def health(self) -> dict[str, Any]:
        """`{healthy, status, last_success, error}` — healthy while RUNNING or PAUSED."""
        return {
            "healthy": self.status in (ServiceStatus.RUNNING, ServiceStatus.PAUSED),
            "status": self.status.value,
            "last_success": (
                self.metrics_data.last_success_at.isoformat()
                if self.metrics_data.last_success_at
                else None
            ),
            "error": self.error,
            "lease": self.lease(),
        }

    def lease(self) -> dict[str, Any] | None:
        """The leadership lease this service competes for: `{name, leader}` (whether this
        process leads it now), or None for a service every replica runs."""
        if self.leader is None:
            return None
        return {"name": self.leader.lease_name, "leader": self.leader.is_leader}

    def metrics(self) -> dict[str, Any]:
        """Run counters as JSON."""
        return self.metrics_data.to_json()

    @staticmethod
    def monotonic() -> float:
        return time.perf_counter()
