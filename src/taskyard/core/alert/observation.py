"""What the alerts leader observed of the cluster, and each rule's condition read from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from taskyard.core.alert.rule import AlertKind, AlertRule
from taskyard.core.coverage import TaskCounts, task_coverage
from taskyard.core.queue import StatsRow

__all__ = ("Labels", "Observation", "Reading", "ScheduleSeen", "WorkerSeen", "readings")


#: One alert instance's subject, e.g. `(("queue", "payments"),)`; a rule without a fixed
#: subject (no `queue` given) has one instance per queue it sees.
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """A registered worker: the queues it works (`"*"` or empty: all), its last heartbeat
    and the task names it can run."""

    id: str
    queues: tuple[str, ...]
    last_heartbeat: datetime
    tasks: tuple[str, ...] = ()

    def works(self, queue: str) -> bool:
        return not self.queues or "*" in self.queues or queue in self.queues


@dataclass(frozen=True, slots=True)
class ScheduleSeen:
    """A schedule's name, whether it is enabled, and when it should fire next."""

    name: str
    enabled: bool
    next_fire_at: datetime | None


@dataclass(frozen=True, slots=True)
class Observation:
    """One snapshot of the cluster, read once per evaluation.

    `waiting` is pending + due scheduled jobs per queue; `outcomes` per-minute counts of
    final outcomes; `services` the status (e.g. `"ERROR"`) of each service of the
    evaluating process by id; `tasks` the active jobs per (queue, task).
    """

    waiting: Mapping[str, int] = field(default_factory=dict)
    outcomes: Sequence[StatsRow] = ()
    workers: Sequence[WorkerSeen] = ()
    services: Mapping[str, str] = field(default_factory=dict)
    schedules: Sequence[ScheduleSeen] = ()
    tasks: Sequence[TaskCounts] = ()


@dataclass(frozen=True, slots=True)
class Reading:
    """A rule's condition for one subject at one evaluation: true or not, and the value seen."""

    labels: Labels
    active: bool
    value: float | None


def readings(rule: AlertRule, observation: Observation, now: datetime) -> list[Reading]:
    """The rule's condition for each subject it sees in `observation`."""
    kind = rule.kind
    if kind is AlertKind.QUEUE_DEPTH:
        assert rule.threshold is not None
        depths = _subjects(rule.queue, observation.waiting)
        return [Reading((("queue", q),), n > rule.threshold, float(n)) for q, n in depths.items()]
    if kind is AlertKind.FAILURE_RATE:
        assert rule.threshold is not None
        start = now - timedelta(seconds=rule.window)
        totals: dict[str, list[int]] = {}
        for row in observation.outcomes:
            # A minute counts when it overlaps the window (per-minute counts are the finest grain).
            if row.minute + timedelta(minutes=1) > start and row.minute <= now:
                cell = totals.setdefault(row.queue, [0, 0])
                cell[0] += row.completed
                cell[1] += row.failed
        if rule.queue is not None:
            totals = {rule.queue: totals.get(rule.queue, [0, 0])}
        found = []
        for queue, (completed, failed) in sorted(totals.items()):
            seen = completed + failed
            rate = 100.0 * failed / seen if seen else 0.0
            found.append(Reading((("queue", queue),), seen >= rule.min_outcomes and rate > rule.threshold, rate))
        return found
    if kind is AlertKind.SERVICE_ERROR:
        statuses = _subjects(rule.service, observation.services, missing="STOPPED")
        return [
            Reading((("service", sid),), status == "ERROR", 1.0 if status == "ERROR" else 0.0)
            for sid, status in statuses.items()
        ]
    if kind is AlertKind.NO_WORKER:
        cutoff = now - timedelta(seconds=rule.worker_timeout)
        live = [w for w in observation.workers if w.last_heartbeat >= cutoff]
        found = []
        for queue, waiting in _subjects(rule.queue, observation.waiting).items():
            has_worker = any(w.works(queue) for w in live)
            found.append(Reading((("queue", queue),), waiting > 0 and not has_worker, float(waiting)))
        return found
    if kind is AlertKind.UNCLAIMABLE_TASK:
        coverage = task_coverage(
            observation.tasks, observation.workers, now=now, worker_timeout=rule.worker_timeout
        )
        waited = {c.task: (c.waited(now) if c.is_unclaimable else 0.0) for c in coverage}
        return [
            Reading((("task", task),), seconds > rule.max_wait, seconds)
            for task, seconds in _subjects(rule.task, waited, missing=0.0).items()
        ]
    # SCHEDULE_MISSED
    found = []
    for schedule in observation.schedules:
        if rule.schedule is not None and schedule.name != rule.schedule:
            continue
        late = (
            (now - schedule.next_fire_at).total_seconds()
            if schedule.enabled and schedule.next_fire_at is not None
            else 0.0
        )
        found.append(Reading((("schedule", schedule.name),), late > rule.grace, max(late, 0.0)))
    return found


def _subjects(fixed: str | None, values: Mapping[str, Any], missing: Any = 0) -> dict[str, Any]:
    """Every subject in `values`, or only `fixed` (with `missing` when it is not there)."""
    if fixed is not None:
        return {fixed: values.get(fixed, missing)}
    return dict(sorted(values.items()))
