"""`Alerter`: the leader-only duty that observes the cluster, runs the alert state machine
(`taskyard.core.alert`) and hands fire/resolve events to the notifiers.

Alert state lives in this process's memory. A new term of leadership starts from a blank
state, so an alert still firing when leadership moves is notified once more by the new leader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from taskyard.backends.protocol import Backend
from taskyard.core.alert import (
    AlertEvent,
    AlertKind,
    AlertRule,
    AlertStatus,
    Labels,
    Observation,
    ScheduleSeen,
    WorkerSeen,
    evaluate,
)
from taskyard.core.job import JobStatus
from taskyard.services.alerts.notifier import LogNotifier, Notifier
from taskyard.services.periodic import PeriodicService
from taskyard.services.store_clock import StoreClock

__all__ = ("Alerter",)

log = logging.getLogger("taskyard.alerts")


class Alerter(PeriodicService):
    """Leader-only: every `interval` (15 s by default) evaluate `rules` and notify.

    `manager` (a `ServiceManager`) is read for `service_error` rules: the statuses of the
    services of this process. A notifier that fails is logged and counted in
    `notify_failures`; it never fails the tick, and the event is not sent again.
    """

    default_id = "alerter"

    def __init__(
        self,
        backend: Backend,
        rules: Sequence[AlertRule],
        notifiers: Sequence[Notifier] = (),
        *,
        manager: Any | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        names = [rule.name for rule in rules]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"alert rule {duplicate!r} is declared twice")
        self.backend = backend
        self.rules = tuple(rules)
        self.notifiers: tuple[Notifier, ...] = (
            tuple(notifiers) if any(isinstance(n, LogNotifier) for n in notifiers)
            else (LogNotifier(), *notifiers)
        )
        self.manager = manager
        self.notified = 0
        self.notify_failures = 0
        self._states: dict[str, dict[Labels, AlertStatus]] = {}
        self._term: object = None

    def states(self) -> list[dict[str, Any]]:
        """Every alert instance as plain JSON (name, kind, state, labels, value, threshold,
        since, started_at, resolved_at, evaluated_at), by rule then subject. A rule not
        evaluated yet, or whose subjects are all unseen, appears once with state `ok`."""
        found: list[dict[str, Any]] = []
        for rule in self.rules:
            instances = self._states.get(rule.name, {})
            if not instances:
                found.append(AlertStatus(rule=rule.name, kind=rule.kind, labels=()).to_json())
            found.extend(instances[labels].to_json() for labels in sorted(instances))
        return found

    async def execute(self) -> None:
        term = getattr(self.leader, "changes", None)
        if term != self._term:
            # Leadership changed hands since the last tick: what we remember may be stale.
            self._term = term
            self._states = {}
        # Stats minutes, heartbeats and fire times are the store's time: judge them by it.
        now = await StoreClock(self.clock).refresh(self.backend)
        observation = await self.observe(now)
        events: list[AlertEvent] = []
        for rule in self.rules:
            result = evaluate(rule, observation, self._states.get(rule.name, {}), now)
            self._states[rule.name] = result.states
            events.extend(result.events)
        for event in events:
            await self._deliver(event)

    async def observe(self, now: datetime) -> Observation:
        """Read what the rules need, and only that."""
        kinds = {rule.kind for rule in self.rules}
        waiting: dict[str, int] = {}
        if kinds & {AlertKind.QUEUE_DEPTH, AlertKind.NO_WORKER}:
            # Due scheduled jobs are made pending by the Promoter (the maintenance leader, every
            # second; the alerter runs in the same role), so pending is "pending + due
            # scheduled" within one promote interval.
            waiting = {c.queue: c.get(JobStatus.PENDING) for c in await self.backend.queue_counts()}
        outcomes = []
        windows = [rule.window for rule in self.rules if rule.kind is AlertKind.FAILURE_RATE]
        if windows:
            since = (now - timedelta(seconds=max(windows))).replace(second=0, microsecond=0)
            outcomes = await self.backend.stats_read(since=since)
        workers = []
        if kinds & {AlertKind.NO_WORKER, AlertKind.UNCLAIMABLE_TASK}:
            workers = [
                WorkerSeen(
                    id=w.id, queues=tuple(w.queues), last_heartbeat=w.last_heartbeat, tasks=w.tasks
                )
                for w in await self.backend.workers_list()
            ]
        tasks = []
        if AlertKind.UNCLAIMABLE_TASK in kinds:
            tasks = await self.backend.task_counts(now=now)
        schedules = []
        if AlertKind.SCHEDULE_MISSED in kinds:
            schedules = [
                ScheduleSeen(name=s.name, enabled=s.enabled, next_fire_at=s.next_fire_at)
                for s in await self.backend.schedules_list()
            ]
        services: dict[str, str] = {}
        if AlertKind.SERVICE_ERROR in kinds and self.manager is not None:
            services = {e.id: e.service.status.value for e in self.manager.services()}
        return Observation(
            waiting=waiting, outcomes=outcomes, workers=workers, services=services,
            schedules=schedules, tasks=tasks,
        )

    async def _deliver(self, event: AlertEvent) -> None:
        """Every notifier at once; a failure is logged and never reaches the tick."""
        results = await asyncio.gather(
            *(notifier.notify(event) for notifier in self.notifiers), return_exceptions=True
        )
        self.notified += 1
        for notifier, result in zip(self.notifiers, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                self.notify_failures += 1
                log.error(
                    "alert notifier %s failed for %s: %s", notifier.name, event.summary(),
                    f"{type(result).__name__}: {result}", extra={"service_id": self.id},
                )
