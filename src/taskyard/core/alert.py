"""Alerts as pure data and policy: rules, what the leader observed, and the state machine
`ok → pending → firing → resolved → ok` that makes each episode notify once and resolve once.

No I/O and no asyncio: `evaluate(rule, observation, previous, now)` is a pure function.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from taskyard.core.coverage import TaskCounts, task_coverage
from taskyard.core.names import check_name, is_name
from taskyard.core.queue import StatsRow

__all__ = (
    "AlertEvent",
    "AlertKind",
    "AlertRule",
    "AlertState",
    "AlertStatus",
    "Evaluation",
    "Labels",
    "Observation",
    "Reading",
    "ScheduleSeen",
    "WorkerSeen",
    "advance",
    "evaluate",
    "parse_rule",
    "readings",
)

#: One alert instance's subject, e.g. `(("queue", "payments"),)`; a rule without a fixed
#: subject (no `queue` given) has one instance per queue it sees.
Labels = tuple[tuple[str, str], ...]


class AlertKind(enum.StrEnum):
    """What a rule watches."""

    QUEUE_DEPTH = "queue_depth"  # waiting jobs of a queue above `threshold`
    FAILURE_RATE = "failure_rate"  # failed / (completed + failed) above `threshold` % over `window`
    SERVICE_ERROR = "service_error"  # a service of the evaluating process in ERROR
    NO_WORKER = "no_worker"  # waiting jobs and no live worker for the queue
    SCHEDULE_MISSED = "schedule_missed"  # an enabled schedule's next fire is `grace` s overdue
    UNCLAIMABLE_TASK = "unclaimable_task"  # jobs of a task no live worker knows waited `max_wait` s


class AlertState(enum.StrEnum):
    """Where one alert instance is. `resolved` lasts one evaluation, then becomes `ok`."""

    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


#: Parameters each kind accepts, beyond `name`, `kind` and `for_seconds` (alias `for`).
KIND_PARAMS: dict[AlertKind, tuple[str, ...]] = {
    AlertKind.QUEUE_DEPTH: ("queue", "threshold"),
    AlertKind.FAILURE_RATE: ("queue", "threshold", "window", "min_outcomes"),
    AlertKind.SERVICE_ERROR: ("service",),
    AlertKind.NO_WORKER: ("queue", "worker_timeout"),
    AlertKind.SCHEDULE_MISSED: ("schedule", "grace"),
    AlertKind.UNCLAIMABLE_TASK: ("task", "max_wait", "worker_timeout"),
}
_NEEDS_THRESHOLD = (AlertKind.QUEUE_DEPTH, AlertKind.FAILURE_RATE)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A named condition and how long it must hold before it fires (`for_seconds`).

    `queue` / `service` / `schedule` fix the subject; None watches each one separately.
    `threshold` is a job count (`queue_depth`) or a percentage 0-100 (`failure_rate`).
    `failure_rate` needs at least `min_outcomes` outcomes in its `window` (seconds).
    `no_worker` counts a worker live while its last heartbeat is younger than
    `worker_timeout`; `schedule_missed` fires once a fire is `grace` seconds overdue;
    `unclaimable_task` once the oldest due job of a task that no live worker knows has
    waited more than `max_wait` seconds.
    Invalid values raise ValueError naming the rule.
    """

    name: str
    kind: AlertKind
    for_seconds: float = 0.0
    queue: str | None = None
    service: str | None = None
    schedule: str | None = None
    task: str | None = None
    threshold: float | None = None
    window: float = 300.0
    min_outcomes: int = 10
    worker_timeout: float = 60.0
    grace: float = 60.0
    max_wait: float = 300.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("alert rule: name must be a non-empty string")
        try:
            object.__setattr__(self, "kind", AlertKind(self.kind))
        except ValueError:
            raise ValueError(
                f"rule {self.name!r}: unknown kind {self.kind!r}{_hint(str(self.kind), [k.value for k in AlertKind])}"
            ) from None
        for key in ("for_seconds", "window", "worker_timeout", "grace", "max_wait"):
            _number(self, key, minimum=0.0)
        if self.window <= 0 or self.worker_timeout <= 0:
            bad = "window" if self.window <= 0 else "worker_timeout"
            raise ValueError(f"rule {self.name!r}: {bad} must be > 0 seconds")
        if isinstance(self.min_outcomes, bool) or not isinstance(self.min_outcomes, int) or self.min_outcomes < 1:
            raise ValueError(f"rule {self.name!r}: min_outcomes must be an integer >= 1 (got {self.min_outcomes!r})")
        if self.kind in _NEEDS_THRESHOLD:
            if self.threshold is None:
                raise ValueError(f"rule {self.name!r}: {self.kind.value} needs a threshold")
            _number(self, "threshold", minimum=0.0)
            if self.kind is AlertKind.FAILURE_RATE and self.threshold > 100:
                raise ValueError(
                    f"rule {self.name!r}: threshold is a percentage and must be between 0 and 100 "
                    f"(got {self.threshold!r})"
                )
        for key in ("queue", "service", "schedule", "task"):
            value = getattr(self, key)
            if value is not None and not is_name(value):
                try:
                    check_name(f"{key} name", value)
                except ValueError as exc:
                    raise ValueError(f"rule {self.name!r}: {exc}") from None

    @property
    def subject_key(self) -> str:
        """The label this kind's instances are told apart by."""
        return {
            AlertKind.SERVICE_ERROR: "service",
            AlertKind.SCHEDULE_MISSED: "schedule",
            AlertKind.UNCLAIMABLE_TASK: "task",
        }.get(self.kind, "queue")

    def to_json(self) -> dict[str, Any]:
        """The rule's name, kind and the parameters its kind uses."""
        data: dict[str, Any] = {"name": self.name, "kind": self.kind.value, "for_seconds": self.for_seconds}
        data.update({key: getattr(self, key) for key in KIND_PARAMS[self.kind]})
        return data


def _number(rule: AlertRule, key: str, *, minimum: float) -> None:
    value = getattr(rule, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"rule {rule.name!r}: {key} must be a number (got {value!r})")
    if value < minimum:
        raise ValueError(f"rule {rule.name!r}: {key} must be >= {minimum:g} (got {value!r})")


def _hint(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; choose from {', '.join(choices)}"


def parse_rule(data: Mapping[str, Any]) -> AlertRule:
    """An `AlertRule` from a table (`name`, `kind`, `for`/`for_seconds` and the kind's
    parameters). Unknown or foreign keys are errors naming the rule and the near miss."""
    params = dict(data)
    name = params.pop("name", None)
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"alert rule: name must be a non-empty string (got {name!r})")
    kind_value = params.pop("kind", None)
    if kind_value is None:
        raise ValueError(f"rule {name!r}: kind is missing; choose from {', '.join(k.value for k in AlertKind)}")
    try:
        kind = AlertKind(kind_value)
    except ValueError:
        raise ValueError(
            f"rule {name!r}: unknown kind {kind_value!r}{_hint(str(kind_value), [k.value for k in AlertKind])}"
        ) from None
    if "for" in params:
        if "for_seconds" in params:
            raise ValueError(f"rule {name!r}: give either for or for_seconds, not both")
        params["for_seconds"] = params.pop("for")
    allowed = ("for_seconds", *KIND_PARAMS[kind])
    for key in params:
        if key not in allowed:
            raise ValueError(
                f"rule {name!r}: {kind.value} has no parameter {key!r}{_hint(key, ['for', *allowed])}"
            )
    return AlertRule(name=name, kind=kind, **params)


# -- what the leader observed ---------------------------------------------------------------
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


# -- the state machine ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlertStatus:
    """One alert instance (a rule and a subject) as the evaluator remembers it.

    `since` is when its condition became true (the start of `pending`); `started_at` when it
    fired; `resolved_at` when it last resolved.
    """

    rule: str
    kind: AlertKind
    labels: Labels
    state: AlertState = AlertState.OK
    value: float | None = None
    threshold: float | None = None
    since: datetime | None = None
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    evaluated_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {
            "name": self.rule,
            "kind": self.kind.value,
            "state": self.state.value,
            "labels": dict(self.labels),
            "value": self.value,
            "threshold": self.threshold,
            "since": iso(self.since),
            "started_at": iso(self.started_at),
            "resolved_at": iso(self.resolved_at),
            "evaluated_at": iso(self.evaluated_at),
        }


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """What notifiers receive: an alert that started firing or resolved."""

    name: str
    kind: AlertKind
    state: AlertState  # FIRING or RESOLVED
    value: float | None
    threshold: float | None
    labels: Labels
    started_at: datetime | None
    at: datetime

    @property
    def subject(self) -> str:
        """`queue=payments` (the labels as text)."""
        return ", ".join(f"{k}={v}" for k, v in self.labels) or "-"

    def summary(self) -> str:
        """One line for a log or an e-mail subject."""
        verb = "FIRING" if self.state is AlertState.FIRING else "RESOLVED"
        value = "" if self.value is None else f" value={_number_text(self.value)}"
        threshold = "" if self.threshold is None else f" threshold={_number_text(self.threshold)}"
        return f"{verb} {self.name} ({self.kind.value}, {self.subject}){value}{threshold}"

    def to_json(self) -> dict[str, Any]:
        """The payload a webhook receives."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "state": self.state.value,
            "value": self.value,
            "threshold": self.threshold,
            "labels": dict(self.labels),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "at": self.at.isoformat(),
        }


def _number_text(value: float) -> str:
    """`100`, `33.33`: whole numbers without a fraction, others to two decimals."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _threshold(rule: AlertRule) -> float | None:
    if rule.kind in _NEEDS_THRESHOLD:
        return rule.threshold
    if rule.kind is AlertKind.SCHEDULE_MISSED:
        return rule.grace
    if rule.kind is AlertKind.UNCLAIMABLE_TASK:
        return rule.max_wait
    return 0.0 if rule.kind is AlertKind.NO_WORKER else None


def advance(
    rule: AlertRule, reading: Reading, previous: AlertStatus | None, now: datetime
) -> tuple[AlertStatus, AlertEvent | None]:
    """The next status of one instance, and the event to notify (None most of the time).

    ok/resolved → pending when the condition turns true (→ firing at once when `for_seconds`
    is 0); pending → firing once it has held `for_seconds`; pending → ok when it turns false
    before (flapping notifies nothing); firing stays firing while true (no repeat);
    firing → resolved when false; resolved → ok.
    """
    prev = previous or AlertStatus(rule=rule.name, kind=rule.kind, labels=reading.labels)
    status = dataclasses.replace(prev, value=reading.value, threshold=_threshold(rule), evaluated_at=now)
    state = prev.state
    if reading.active:
        if state is AlertState.FIRING:
            return status, None
        since = prev.since if state is AlertState.PENDING and prev.since is not None else now
        if (now - since).total_seconds() >= rule.for_seconds:
            fired = dataclasses.replace(status, state=AlertState.FIRING, since=since, started_at=now)
            return fired, _event(fired, AlertState.FIRING, now)
        return dataclasses.replace(status, state=AlertState.PENDING, since=since), None
    if state is AlertState.FIRING:
        resolved = dataclasses.replace(status, state=AlertState.RESOLVED, since=None, resolved_at=now)
        return resolved, _event(resolved, AlertState.RESOLVED, now)
    return dataclasses.replace(status, state=AlertState.OK, since=None), None


def _event(status: AlertStatus, state: AlertState, now: datetime) -> AlertEvent:
    return AlertEvent(
        name=status.rule, kind=status.kind, state=state, value=status.value,
        threshold=status.threshold, labels=status.labels, started_at=status.started_at, at=now,
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A rule's instances after one evaluation, and the events to notify."""

    states: dict[Labels, AlertStatus]
    events: list[AlertEvent]


def evaluate(
    rule: AlertRule,
    observation: Observation,
    previous: Mapping[Labels, AlertStatus],
    now: datetime,
) -> Evaluation:
    """Advance every instance of `rule` by one evaluation.

    An instance whose subject is no longer observed (a queue emptied and gone, a schedule
    deleted) counts as false: it resolves if it was firing, then is forgotten.
    """
    states: dict[Labels, AlertStatus] = {}
    events: list[AlertEvent] = []
    seen = {r.labels: r for r in readings(rule, observation, now)}
    for labels, prev in previous.items():
        if labels not in seen and prev.state in (AlertState.FIRING, AlertState.PENDING):
            seen[labels] = Reading(labels, False, None)
    for labels, reading in seen.items():
        status, event = advance(rule, reading, previous.get(labels), now)
        states[labels] = status
        if event is not None:
            events.append(event)
    return Evaluation(states=states, events=events)
