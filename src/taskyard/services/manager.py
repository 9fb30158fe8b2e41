"""`ServiceManager`: registers the services of one process, starts them in dependency order,
stops them in reverse, restarts critical ones that fail, and aggregates their health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskyard.clock import Clock, SystemClock
from taskyard.errors import ConfigError, InvalidTransitionError, NotFoundError
from taskyard.services.base import Service, ServiceEvent, ServiceStatus
from taskyard.services.periodic import PeriodicService
from taskyard.services.testsignals import TestSignals

__all__ = ("ManagedService", "RestartPolicy", "ServiceManager")

log = logging.getLogger("taskyard.manager")

_UP = (ServiceStatus.RUNNING, ServiceStatus.PAUSED)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a critical service that fails is restarted.

    Delays double from `initial_delay` up to `max_delay`; after `max_restarts` restarts in a
    row the service stays in ERROR. A service that stayed up `reset_after` seconds before
    failing starts a fresh series.
    """

    initial_delay: float = 1.0
    max_delay: float = 30.0
    max_restarts: int = 5
    reset_after: float = 60.0

    def delay(self, restart_number: int) -> float:
        """Seconds to wait before restart `restart_number` (0-based) of a series."""
        return float(min(self.initial_delay * 2**restart_number, self.max_delay))


@dataclass(eq=False, slots=True)
class ManagedService:
    """A service as the manager holds it."""

    id: str
    name: str
    service: Service
    critical: bool = False
    auto_start: bool = True
    depends_on: tuple[str, ...] = ()
    stop_timeout: float | None = None
    #: Restarts the manager made (all time, on failure or on request) and in the current
    #: series of restarts after failures.
    restarts: int = 0
    restarts_in_row: int = 0
    #: True once the restart budget is spent; cleared by an explicit `start(id)`.
    gave_up: bool = False
    started_at: float | None = None
    _restart_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _held: bool = field(default=False, repr=False)  # the manager itself is stopping it

    def to_json(self) -> dict[str, Any]:
        """The service's entry in the health document."""
        return {
            "name": self.name,
            **self.service.health(),
            "critical": self.critical,
            "auto_start": self.auto_start,
            "restarts": self.restarts,
            "restarts_in_row": self.restarts_in_row,
            "gave_up": self.gave_up,
            "kind": "periodic" if isinstance(self.service, PeriodicService) else "service",
            "metrics": self.service.metrics(),
        }


class ServiceManager:
    """The services of one process, with one health model."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        restart: RestartPolicy | None = None,
        stop_timeout: float = 10.0,
        auto_restart: bool = True,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.restart_policy = restart or RestartPolicy()
        #: Restart critical services that fail (`manager.auto_restart`); False leaves them in
        #: ERROR until started or restarted by hand.
        self.auto_restart = auto_restart
        self.stop_timeout = stop_timeout
        self._entries: dict[str, ManagedService] = {}
        self._listeners: list[Callable[[ServiceEvent], None]] = []
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._stopping = False
        self.started = False
        #: Set by tests to a `TestSignals` to wait on restart decisions; None otherwise.
        self.signals: TestSignals | None = None

    # -- registry ----------------------------------------------------------------------------
    def register(
        self,
        id: str,
        service: Service,
        *,
        name: str | None = None,
        auto_start: bool = True,
        critical: bool = False,
        depends_on: Sequence[str] = (),
        stop_timeout: float | None = None,
    ) -> ManagedService:
        """Add `service` under `id` (its `service.id` becomes `id`)."""
        if not id:
            raise ValueError("service id must not be empty")
        if id in self._entries:
            raise ValueError(f"service {id!r} is already registered")
        service.id = id
        entry = ManagedService(
            id=id,
            name=name or service.name or id,
            service=service,
            critical=critical,
            auto_start=auto_start,
            depends_on=tuple(depends_on),
            stop_timeout=stop_timeout,
        )
        self._entries[id] = entry

        def forward(event: ServiceEvent) -> None:
            self._on_event(entry, event)

        self._unsubscribe[id] = service.subscribe(forward)
        return entry

    def services(self) -> list[ManagedService]:
        """Every registered service, in start order."""
        return self._ordered()

    def get(self, id: str) -> ManagedService:
        """The service registered as `id`, or `NotFoundError`."""
        try:
            return self._entries[id]
        except KeyError:
            raise NotFoundError(f"no service {id!r} (known: {', '.join(self._entries) or 'none'})") from None

    def subscribe(self, callback: Callable[[ServiceEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` for every event of every service (and each restart)."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _ordered(self) -> list[ManagedService]:
        """Dependencies first, otherwise registration order; unknown or cyclic ones fail."""
        done: dict[str, ManagedService] = {}
        visiting: list[str] = []

        def visit(entry: ManagedService) -> None:
            if entry.id in done:
                return
            if entry.id in visiting:
                cycle = " -> ".join([*visiting[visiting.index(entry.id):], entry.id])
                raise ConfigError(f"services depend on each other in a cycle: {cycle}")
            visiting.append(entry.id)
            for dep in entry.depends_on:
                if dep not in self._entries:
                    raise ConfigError(f"service {entry.id!r} depends on unknown service {dep!r}")
                visit(self._entries[dep])
            visiting.pop()
            done[entry.id] = entry

        for entry in self._entries.values():
            visit(entry)
        return list(done.values())

    # -- lifecycle ---------------------------------------------------------------------------
    async def start_all(self) -> list[str]:
        """Start every auto-start service that is not running (STOPPED, or ERROR: stopped
        first) in dependency order, each with a fresh restart budget. A service whose start
        fails goes to ERROR (critical ones are then restarted); its dependents are not
        started. Returns the ids of the services it started."""
        self._stopping = False
        self.started = True
        started: list[str] = []
        for entry in self._ordered():
            if not entry.auto_start or entry.service.status in _UP:
                continue
            missing = [d for d in entry.depends_on if self._entries[d].service.status not in _UP]
            if missing:
                log.error(
                    "not starting %s: it depends on %s, which is not running", entry.id,
                    ", ".join(missing), extra={"service_id": entry.id},
                )
                continue
            self._cancel_restart(entry)
            entry.gave_up = False
            entry.restarts_in_row = 0
            if entry.service.status is ServiceStatus.ERROR:
                await self._stop_entry(entry)
            if await self._start_entry(entry):
                started.append(entry.id)
        return started

    async def stop_all(self) -> None:
        """Stop every service, dependents first; no restarts happen from here on."""
        self._stopping = True
        for entry in self._entries.values():
            self._cancel_restart(entry)
        for entry in reversed(self._ordered()):
            await self._stop_entry(entry)
        for entry in self._entries.values():
            task = entry._restart_task
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def start(self, id: str) -> None:
        """Start one service (a fresh restart budget); raises what its start raises."""
        entry = self.get(id)
        self._cancel_restart(entry)
        entry.gave_up = False
        entry.restarts_in_row = 0
        if entry.service.status in _UP:
            return
        if entry.service.status is ServiceStatus.ERROR:
            await self._stop_entry(entry)
        if not await self._start_entry(entry):
            raise InvalidTransitionError(f"service {id!r} failed to start: {entry.service.error}")

    async def restart(self, id: str) -> None:
        """Stop one service and start it again (a fresh restart budget; counted in
        `restarts`); raises `InvalidTransitionError` when the start fails."""
        entry = self.get(id)
        self._cancel_restart(entry)
        entry.gave_up = False
        entry.restarts_in_row = 0
        await self._stop_entry(entry)
        entry.restarts += 1
        self._forward(self._event(entry, "restart"))
        log.info("restarting service %s on request", id, extra={"service_id": id})
        if not await self._start_entry(entry):
            raise InvalidTransitionError(f"service {id!r} failed to start: {entry.service.error}")

    async def stop(self, id: str) -> None:
        """Stop one service (it is not restarted until started again)."""
        entry = self.get(id)
        self._cancel_restart(entry)
        await self._stop_entry(entry)

    def pause(self, id: str) -> None:
        """RUNNING → PAUSED, or `InvalidTransitionError`."""
        service = self.get(id).service
        if service.status is ServiceStatus.PAUSED:
            return
        if service.status is not ServiceStatus.RUNNING:
            raise InvalidTransitionError(f"service {id!r} is {service.status.value}; only a RUNNING service can pause")
        service.pause()

    def resume(self, id: str) -> None:
        """PAUSED → RUNNING, or `InvalidTransitionError`."""
        service = self.get(id).service
        if service.status is ServiceStatus.RUNNING:
            return
        if service.status is not ServiceStatus.PAUSED:
            raise InvalidTransitionError(f"service {id!r} is {service.status.value}; only a PAUSED service can resume")
        service.resume()

    async def run_now(self, id: str) -> bool:
        """Run one tick of a periodic service now (even while paused); True on success."""
        service = self.get(id).service
        if not isinstance(service, PeriodicService):
            raise InvalidTransitionError(f"service {id!r} is not periodic; it cannot be run now")
        if service.status not in _UP:
            raise InvalidTransitionError(f"service {id!r} is {service.status.value}; start it first")
        return await service.run_once()

    async def _start_entry(self, entry: ManagedService) -> bool:
        entry._held = False
        try:
            await entry.service.start()
        except Exception:
            return False  # the service logged it and is in ERROR; _on_event schedules a restart
        entry.started_at = self.clock.monotonic()
        return True

    async def _stop_entry(self, entry: ManagedService) -> None:
        entry._held = True
        timeout = entry.stop_timeout if entry.stop_timeout is not None else self.stop_timeout
        try:
            await entry.service.stop(timeout=timeout)
        except Exception:
            log.exception("service %s failed to stop", entry.id, extra={"service_id": entry.id})

    # -- events and restarts -----------------------------------------------------------------
    def _on_event(self, entry: ManagedService, event: ServiceEvent) -> None:
        if event.kind == "status":
            level = logging.ERROR if event.status is ServiceStatus.ERROR else logging.INFO
            log.log(
                level, "service %s is %s%s", entry.id, event.status.value,
                f": {event.error}" if event.error else "", extra={"service_id": entry.id},
            )
            if event.status is ServiceStatus.ERROR:
                self._maybe_restart(entry)
        self._forward(event)

    def _forward(self, event: ServiceEvent) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                log.exception("service event listener failed")

    def _maybe_restart(self, entry: ManagedService) -> None:
        if not entry.critical or not self.auto_restart or self._stopping or entry._held:
            self._signal("restart_skipped", entry.id)
            return
        if entry._restart_task is not None and not entry._restart_task.done():
            return  # a restart series is under way; it sees this failure itself
        up_for = (
            self.clock.monotonic() - entry.started_at if entry.started_at is not None else 0.0
        )
        if up_for >= self.restart_policy.reset_after:
            entry.restarts_in_row = 0
        try:
            entry._restart_task = asyncio.get_running_loop().create_task(
                self._restart(entry), name=f"restart:{entry.id}"
            )
            self._signal("restart_scheduled", entry.id)
        except RuntimeError:  # no running loop: nothing can be restarted from here
            log.error("cannot restart %s outside an event loop", entry.id)

    def _signal(self, name: str, service_id: str) -> None:
        if self.signals is not None:
            self.signals.record(name, service_id)

    async def _restart(self, entry: ManagedService) -> None:
        try:
            await self._restart_series(entry)
        finally:
            self._signal("restart_ended", entry.id)

    async def _restart_series(self, entry: ManagedService) -> None:
        policy = self.restart_policy
        while not self._stopping and not entry._held:
            if entry.restarts_in_row >= policy.max_restarts:
                entry.gave_up = True
                log.error(
                    "service %s failed %d time(s) in a row; giving up (it stays in ERROR)",
                    entry.id, entry.restarts_in_row + 1, extra={"service_id": entry.id},
                )
                self._forward(self._event(entry, "gave_up"))
                return
            delay = policy.delay(entry.restarts_in_row)
            log.warning(
                "restarting critical service %s in %.1fs", entry.id, delay, extra={"service_id": entry.id}
            )
            await self.clock.sleep(delay)
            if self._stopping or entry._held:
                return
            entry.restarts_in_row += 1
            entry.restarts += 1
            with contextlib.suppress(Exception):
                await entry.service.stop(timeout=entry.stop_timeout or self.stop_timeout)
            if self._stopping or entry._held:
                return
            self._forward(self._event(entry, "restart"))
            try:
                await entry.service.start()
            except Exception:  # noqa: S112 - Service.start logged it; the service stays in ERROR
                continue  # next attempt of the series
            entry.started_at = self.clock.monotonic()
            return

    def _event(self, entry: ManagedService, kind: str) -> ServiceEvent:
        return ServiceEvent(
            entry.id, kind, entry.service.status, self.clock.now(), error=entry.service.error
        )

    def _cancel_restart(self, entry: ManagedService) -> None:
        task = entry._restart_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    # -- health ------------------------------------------------------------------------------
    def critical_down(self) -> list[str]:
        """Ids of critical services that should run and do not: in ERROR, or auto-start ones
        that are not RUNNING or PAUSED (a critical service that is not auto-started only
        counts once it fails)."""
        return [
            e.id
            for e in self._entries.values()
            if e.critical
            and (
                e.service.status is ServiceStatus.ERROR
                or (e.auto_start and e.service.status not in _UP)
            )
        ]

    def in_error(self) -> list[str]:
        """Ids of services in ERROR."""
        return [e.id for e in self._entries.values() if e.service.status is ServiceStatus.ERROR]

    def health(self) -> dict[str, Any]:
        """The health document: `healthy`, `status` (healthy | degraded | unhealthy),
        `timestamp`, `totals` per status, and `services` by id."""
        entries = self._ordered()
        totals = {"total": len(entries)} | {s.value.lower(): 0 for s in ServiceStatus}
        for entry in entries:
            totals[entry.service.status.value.lower()] += 1
        if self.critical_down():
            status = "unhealthy"
        elif (
            self.in_error()
            or any(e.auto_start and e.service.status not in _UP for e in entries)
            or any(e.service.status in _UP and not e.service.health()["healthy"] for e in entries)
        ):
            status = "degraded"
        else:
            status = "healthy"
        return {
            "healthy": status == "healthy",
            "status": status,
            "timestamp": self.clock.now().isoformat(),
            "totals": totals,
            "services": {entry.id: entry.to_json() for entry in entries},
        }
