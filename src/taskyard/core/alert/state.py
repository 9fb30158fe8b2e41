"""The state machine `ok → pending → firing → resolved → ok` that makes each episode of an
alert notify once and resolve once; `evaluate` runs it for one rule."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskyard.core.alert.observation import Labels, Observation, Reading, readings
from taskyard.core.alert.rule import AlertKind, AlertRule, reported_threshold

__all__ = ("AlertEvent", "AlertState", "AlertStatus", "Evaluation", "advance", "evaluate")


class AlertState(enum.StrEnum):
    """Where one alert instance is. `resolved` lasts one evaluation, then becomes `ok`."""

    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"



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
    status = dataclasses.replace(prev, value=reading.value, threshold=reported_threshold(rule), evaluated_at=now)
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
