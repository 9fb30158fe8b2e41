"""Alert rules: what each kind watches, its parameters, and their validation (`parse_rule`)."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from taskyard.core.names import check_name, is_name

__all__ = ("KIND_PARAMS", "AlertKind", "AlertRule", "parse_rule", "reported_threshold")



class AlertKind(enum.StrEnum):
    """What a rule watches."""

    QUEUE_DEPTH = "queue_depth"  # waiting jobs of a queue above `threshold`
    FAILURE_RATE = "failure_rate"  # failed / (completed + failed) above `threshold` % over `window`
    SERVICE_ERROR = "service_error"  # a service of the evaluating process in ERROR
    NO_WORKER = "no_worker"  # waiting jobs and no live worker for the queue
    SCHEDULE_MISSED = "schedule_missed"  # an enabled schedule's next fire is `grace` s overdue
    UNCLAIMABLE_TASK = "unclaimable_task"  # jobs of a task no live worker knows waited `max_wait` s


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


def reported_threshold(rule: AlertRule) -> float | None:
    """The number an alert of `rule` reports as its threshold (None: a kind without one)."""
    if rule.kind in _NEEDS_THRESHOLD:
        return rule.threshold
    if rule.kind is AlertKind.SCHEDULE_MISSED:
        return rule.grace
    if rule.kind is AlertKind.UNCLAIMABLE_TASK:
        return rule.max_wait
    return 0.0 if rule.kind is AlertKind.NO_WORKER else None
