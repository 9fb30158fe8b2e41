"""`Scheduler`: the leader-only service that fires due schedules, one job per fire.

Two locks make a fire exactly one job: the leader lease (one scheduler works at a time) and
the fire's unique key and derived job id (even two schedulers that both believe they lead
store one job). The job is stored before the fire is recorded, so a crash in between replays
the same fire into the same job instead of losing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from taskyard.core.coverage import WORKER_LIVE_SECONDS
from taskyard.core.schedule import Schedule, plan_fires
from taskyard.errors import PayloadError, ScheduleError, UnknownTaskError
from taskyard.schedules import DECLARED_GRACE, DeclarationReport
from taskyard.services.base import Service, ServiceEvent
from taskyard.services.store_clock import StoreClock

if TYPE_CHECKING:
    from taskyard.app import Taskyard
    from taskyard.services.leader import LeaderElector

__all__ = ("FireRecord", "Scheduler", "SchedulerConfig")

log = logging.getLogger("taskyard.scheduler")


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """How the scheduler polls.

    `tick_interval` bounds each wait, so schedules added or changed by other processes are seen
    within that time; `error_backoff` is the pause after a failed pass (backend outage).
    `sync_declared` stores the app's declared schedules when the scheduler starts and confirms
    them every `confirm_interval`; the leader deletes declarations nobody has confirmed for
    `declared_grace` seconds (see `core/declaration.py`).
    """

    tick_interval: float = 1.0
    error_backoff: float = 1.0
    sync_declared: bool = True
    declared_grace: float = DECLARED_GRACE

    def __post_init__(self) -> None:
        if self.tick_interval <= 0:
            raise ValueError("scheduler tick_interval must be > 0 seconds")
        if self.error_backoff < 0:
            raise ValueError("scheduler error_backoff must be >= 0 seconds")
        if self.declared_grace <= 0:
            raise ValueError("scheduler declared_grace must be > 0 seconds")

    @property
    def confirm_interval(self) -> float:
        """Seconds between two confirmations of the declared schedules: 10, or a sixth of
        the grace when that is shorter (a live declarer confirms several times per grace).
        """
        return min(10.0, self.declared_grace / 6)


@dataclass(frozen=True, slots=True)
class FireRecord:
    """What one pass did for one schedule (given to `subscribe_fires` callbacks)."""

    schedule: str
    fire_times: tuple[datetime, ...]
    job_ids: tuple[str, ...]
    recorded: bool
    missed: int
    at: datetime


class Scheduler(Service):
    """Fires due schedules while `leader` holds the lease; id "scheduler"."""

    default_id = "scheduler"
    leader: LeaderElector | None

    def __init__(
        self,
        app: Taskyard,
        leader: LeaderElector | None,
        config: SchedulerConfig | None = None,
        *,
        rng: random.Random | None = None,
        **kwargs: object,
    ) -> None:
        kwargs.setdefault("clock", app.clock)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app
        self.leader = leader
        self.config = config or SchedulerConfig()
        self.rng = rng or random.Random()  # noqa: S311 - fire jitter, no secret
        self.fires = 0
        self._wake = asyncio.Event()
        self._subscribers: list[Callable[[FireRecord], None]] = []
        self._leading = False
        self._unsubscribe: Callable[[], None] | None = None
        self._next_declare = 0.0
        self._yielded: set[str] = set()
        self._unrunnable: set[str] = set()  # schedules held back, logged once each
        self.store_clock = StoreClock(self.clock)

    def subscribe_fires(self, callback: Callable[[FireRecord], None]) -> None:
        """Call `callback(FireRecord)` after each schedule this scheduler fires."""
        self._subscribers.append(callback)

    def wake(self) -> None:
        """Look at the schedules now instead of at the end of the current wait."""
        self._wake.set()

    @property
    def is_leader(self) -> bool:
        return self.leader is None or self.leader.is_leader

    def _on_leader_event(self, event: ServiceEvent) -> None:
        # Start firing as soon as leadership is won, not at the end of the current wait.
        leading = self.is_leader
        if leading and not self._leading:
            self.wake()
        self._leading = leading

    async def on_start(self) -> None:
        if self.leader is not None and self._unsubscribe is None:
            self._unsubscribe = self.leader.subscribe(self._on_leader_event)
        await self.app.open()
        if self.config.sync_declared:
            await self.declare()

    async def declare(self) -> DeclarationReport:
        """Store or confirm the app's declared schedules; while leading, also delete those
        nobody has confirmed for `declared_grace`. Logs what changed.
        """
        self._next_declare = self.monotonic() + self.config.confirm_interval
        report = await self.app.schedules.sync_declared(
            grace=self.config.declared_grace, expire=self.is_leader, now=await self.now()
        )
        extra = {"service_id": self.id}
        if report.written:
            log.info("declared schedules stored: %s", ", ".join(report.written), extra=extra)
        if report.removed:
            log.info(
                "declared schedules removed (unconfirmed for %gs): %s",
                self.config.declared_grace, ", ".join(report.removed), extra=extra,
            )
        for name in sorted(set(report.yielded) - self._yielded):
            log.info(
                "schedule %r is declared differently by a process started after this one; "
                "keeping its definition", name, extra=extra,
            )
        self._yielded = set(report.yielded)
        return report

    async def _declare_when_due(self) -> None:
        if not self.config.sync_declared or self.monotonic() < self._next_declare:
            return
        try:
            await self.declare()
        except Exception as exc:  # a backend outage: confirm again at the next interval
            log.warning("declared schedules not confirmed: %s", exc, extra={"service_id": self.id})

    async def run(self) -> None:
        while not self.stopping.is_set():
            await self._declare_when_due()
            if self.is_paused:
                # A paused scheduler fires nothing but still declares: its schedules must not
                # expire because someone paused it for longer than the grace.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wait_resumed(), self.config.confirm_interval)
                continue
            delay = self.config.tick_interval
            if self.is_leader:
                started = self.monotonic()
                try:
                    delay = await self.tick()
                except Exception as exc:  # a backend outage: retry, never crash the loop
                    log.warning("scheduler pass failed: %s", exc, extra={"service_id": self.id})
                    self.record_run(ok=False, duration=self.monotonic() - started, error=str(exc))
                    delay = self.config.error_backoff
                else:
                    self.record_run(ok=True, duration=self.monotonic() - started, emit=False)
            if delay > 0 and await self.sleep(delay, wake=self._wake):
                return

    async def now(self) -> datetime:
        """The time fires are judged by: the store's clock where it has one (so a scheduler
        whose machine clock is off neither fires early nor late), else this process's."""
        return await self.store_clock.refresh(await self.app.backend_for_loop())

    async def tick(self) -> float:
        """One pass: fire every due schedule; returns seconds until the next fire (bounded)."""
        backend = await self.app.backend_for_loop()
        now = await self.now()
        horizon = now + timedelta(seconds=self.config.tick_interval)
        upcoming = await backend.schedules_due(now=horizon)
        fired = False
        known_elsewhere: set[str] | None = None  # tasks live workers know, read once per pass
        for schedule in upcoming:
            if schedule.next_fire_at is None or schedule.next_fire_at > now:
                continue
            if not self.is_leader or self.stopping.is_set():
                return 0.0 if self.stopping.is_set() else self.config.tick_interval
            if schedule.task not in self.app.tasks:
                if known_elsewhere is None:
                    known_elsewhere = await self._tasks_of_live_workers(now)
                if not self._can_fire_foreign(schedule, known_elsewhere):
                    continue
            await self.fire(schedule, now)
            fired = True
        if fired:
            return 0.0  # re-read: firing took time and moved next_fire_at
        later = [s.next_fire_at for s in upcoming if s.next_fire_at is not None and s.next_fire_at > now]
        target = min(later) if later else horizon
        return max((target - self.store_clock.now()).total_seconds(), 0.0)

    async def _tasks_of_live_workers(self, now: datetime) -> set[str]:
        backend = await self.app.backend_for_loop()
        live_after = now - timedelta(seconds=WORKER_LIVE_SECONDS)
        return {t for w in await backend.workers_list() if w.last_heartbeat >= live_after for t in w.tasks}

    def _can_fire_foreign(self, schedule: Schedule, known_elsewhere: set[str]) -> bool:
        """A schedule whose task this app does not know (another app, another version) fires
        with the task settings stored with it, but only while a live worker knows the task;
        otherwise it stays due — never fired into failure, and flagged by its overdue next
        fire (the `schedule_missed` alert) — and fires under its misfire policy once one does.
        """
        if schedule.task in known_elsewhere and schedule.task_defaults is not None:
            self._unrunnable.discard(schedule.name)
            return True
        if schedule.name not in self._unrunnable:
            self._unrunnable.add(schedule.name)
            why = (
                "no live worker knows it" if schedule.task not in known_elsewhere
                else "it was stored without the task's settings (by an older taskyard) and no "
                "process that knows the task has stored it since"
            )
            log.warning(
                "schedule %r is held back: its task %r is not registered in this app and %s",
                schedule.name, schedule.task, why, extra={"service_id": self.id},
            )
        return False

    async def fire(self, schedule: Schedule, now: datetime) -> FireRecord:
        """Enqueue the jobs `schedule`'s misfire policy plans at `now`, then record the fire."""
        backend = await self.app.backend_for_loop()
        try:
            timing = schedule.timing()
            plan = plan_fires(schedule, now, timing=timing)
            drafts = self.app.schedules.drafts(schedule, plan.fire_times, rng=self.rng)
        except (ScheduleError, UnknownTaskError, PayloadError) as exc:
            # The stored definition no longer fits this app (task renamed, model changed):
            # firing it can only fail again, so the fire is recorded as missed and logged.
            log.error("schedule %r cannot fire: %s", schedule.name, exc, extra={"service_id": self.id})
            fallback = schedule.next_fire_at or now
            next_at = _safe_next(schedule, now)
            recorded = await backend.schedule_record_fire(
                name=schedule.name, fire_time=fallback, next_fire_at=next_at
            )
            return self._emit_fire(FireRecord(schedule.name, (), (), recorded, 1, now))
        jobs = await self.app.store_drafts(drafts, schedule=schedule.name) if drafts else []
        recorded = False
        if plan.record_at is not None:
            recorded = await backend.schedule_record_fire(
                name=schedule.name, fire_time=plan.record_at, next_fire_at=plan.next_fire_at
            )
        if plan.missed:
            log.warning(
                "schedule %r missed %d fire(s) before %s (misfire=%s)", schedule.name, plan.missed,
                now.isoformat(), schedule.misfire.value, extra={"service_id": self.id},
            )
        self.fires += len(plan.fire_times)
        record = FireRecord(
            schedule.name, plan.fire_times, tuple(j.id for j in jobs), recorded, max(plan.missed, 0), now
        )
        return self._emit_fire(record)

    def _emit_fire(self, record: FireRecord) -> FireRecord:
        for callback in list(self._subscribers):
            with contextlib.suppress(Exception):  # a broken subscriber must not stop firing
                callback(record)
        return record

    async def on_stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


def _safe_next(schedule: Schedule, now: datetime) -> datetime | None:
    try:
        return schedule.timing().next_after(now)
    except ScheduleError:
        return None
