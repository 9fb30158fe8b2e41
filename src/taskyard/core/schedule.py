"""Schedules: stored, named recurring enqueues (cron or interval) with their fire bookkeeping.

Backends store a schedule as its JSON (`to_json`) next to a few indexed columns (name, owner,
enabled, next_fire_at), so this record can grow without touching every backend.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskyard.core.cron import Timing
from taskyard.core.names import check_name
from taskyard.errors import InvalidNameError, ScheduleError

__all__ = (
    "DEFINITION_FIELDS",
    "NULLABLE_FIELDS",
    "SETTABLE_DEFAULTS",
    "SETTABLE_FIELDS",
    "FirePlan",
    "MisfirePolicy",
    "Schedule",
    "plan_fires",
)

#: The `Schedule` fields a user sets — through `app.schedule`, `app.schedules.add`/`update`,
#: the HTTP API and the CLI — the one list the others derive from (`SETTABLE_DEFAULTS`,
#: `NULLABLE_FIELDS`, the book's `OPTIONS`; tests hold the API models and schedule-set
#: templates to it). The other fields are the name, provenance and fire bookkeeping.
SETTABLE_FIELDS = (
    "task", "cron", "every", "tz", "payload", "queue", "priority", "jitter", "misfire",
    "misfire_cap", "misfire_grace", "enabled", "owner",
)
#: The fields that define a schedule (as opposed to its fire bookkeeping and timestamps).
DEFINITION_FIELDS = (*SETTABLE_FIELDS, "source", "task_defaults")
#: The fields that decide when a schedule fires; changing one recomputes `next_fire_at`.
TIMING_FIELDS = ("cron", "every", "tz")
_MAX_GRACE = 60.0
_MICRO = timedelta(microseconds=1)


class MisfirePolicy(enum.StrEnum):
    """What to do with fires missed while no scheduler was running."""

    SKIP = "skip"  # resume from now
    ONCE = "once"  # one catch-up fire
    ALL = "all"  # every missed fire, up to `misfire_cap`


_TIME_FIELDS = (
    "last_fire_at", "next_fire_at", "created_at", "updated_at", "declarer_started_at", "confirmed_at",
)


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring enqueue. Exactly one of `cron` / `every` (seconds) is set."""

    name: str
    task: str
    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    payload: Any = None
    queue: str | None = None
    priority: int | None = None
    jitter: float = 0.0
    misfire: MisfirePolicy = MisfirePolicy.SKIP
    misfire_cap: int = 100
    misfire_grace: float | None = None  # seconds late a fire may be and still run; see plan_fires
    enabled: bool = True
    owner: str | None = None
    source: str = "api"  # "code" for schedules declared with app.schedule(); "api" otherwise
    last_fire_at: datetime | None = None
    next_fire_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Declarations (source "code"; see core/declaration.py): the process that stored this
    # definition, when that process started declaring (the newest starter's definition wins),
    # and when a live process last confirmed it still declares this name.
    declarer: str | None = None
    declarer_started_at: datetime | None = None
    confirmed_at: datetime | None = None
    # The task's queue, priority, max_attempts, max_rescues and timeout, captured by the process that stored
    # this schedule (which knew the task), so that a scheduler of another app version that
    # does not know the task can still fire it; None for rows stored by an older taskyard.
    task_defaults: Mapping[str, Any] | None = None

    def replace(self, **changes: Any) -> Schedule:
        """A copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    def timing(self) -> Timing:
        """When this schedule fires (raises `ScheduleError` if its cron/every/tz is invalid)."""
        return Timing(cron=self.cron, every=self.every, tz=self.tz)

    def definition(self) -> dict[str, Any]:
        """The defining fields as JSON (equal definitions → equal dicts)."""
        data = self.to_json()
        return {key: data[key] for key in DEFINITION_FIELDS}

    def validated(self) -> Schedule:
        """This schedule with its cron expression normalised; `ScheduleError` when a field is
        invalid (bad name, cron, every, time zone, jitter, misfire settings, enabled, queue,
        priority, owner). Names (its own, task, queue, owner) follow `core/names.py`.
        """
        try:
            check_name("schedule name", self.name)
            check_name(f"schedule {self.name!r}: task name", self.task)
            if self.queue is not None:
                check_name(f"schedule {self.name!r}: queue name", self.queue)
            if self.owner is not None:
                check_name(f"schedule {self.name!r}: owner", self.owner)
        except InvalidNameError as exc:
            raise ScheduleError(str(exc)) from None
        timing = self.timing()
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float) or not 0 <= self.jitter < 86_400:
            raise ScheduleError(f"schedule {self.name!r}: jitter must be 0 <= seconds < 86400")
        try:
            misfire = MisfirePolicy(self.misfire)
        except ValueError:
            raise ScheduleError(
                f"schedule {self.name!r}: misfire must be one of skip, once, all (not {self.misfire!r})"
            ) from None
        if isinstance(self.misfire_cap, bool) or not isinstance(self.misfire_cap, int) or self.misfire_cap < 1:
            raise ScheduleError(f"schedule {self.name!r}: misfire_cap must be an integer >= 1")
        if self.misfire_grace is not None and (
            not isinstance(self.misfire_grace, int | float) or self.misfire_grace < 0
        ):
            raise ScheduleError(f"schedule {self.name!r}: misfire_grace must be >= 0 seconds")
        if self.priority is not None and (isinstance(self.priority, bool) or not isinstance(self.priority, int)):
            raise ScheduleError(f"schedule {self.name!r}: priority must be an integer")
        if not isinstance(self.enabled, bool):
            raise ScheduleError(f"schedule {self.name!r}: enabled must be true or false")
        return self.replace(cron=timing.cron, misfire=misfire, jitter=float(self.jitter))

    def grace(self, timing: Timing, fire: datetime) -> float:
        """Seconds `fire` may be late and still count as on time: `misfire_grace`, or by
        default half the period between two fires, at most 60 s.
        """
        if self.misfire_grace is not None:
            return float(self.misfire_grace)
        return min(_MAX_GRACE, timing.period_at(fire) / 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "cron": self.cron,
            "every": self.every,
            "tz": self.tz,
            "payload": self.payload,
            "queue": self.queue,
            "priority": self.priority,
            "jitter": self.jitter,
            "misfire": self.misfire.value,
            "misfire_cap": self.misfire_cap,
            "misfire_grace": self.misfire_grace,
            "enabled": self.enabled,
            "owner": self.owner,
            "source": self.source,
            "last_fire_at": self.last_fire_at.isoformat() if self.last_fire_at else None,
            "next_fire_at": self.next_fire_at.isoformat() if self.next_fire_at else None,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "task_defaults": dict(self.task_defaults) if self.task_defaults is not None else None,
            "declarer": self.declarer,
            "declarer_started_at": _iso(self.declarer_started_at),
            "confirmed_at": _iso(self.confirmed_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Schedule:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key in _TIME_FIELDS:
            values[key] = _dt(values.get(key))
        if "misfire" in values:
            values["misfire"] = MisfirePolicy(values["misfire"])
        return cls(**values)


def _settable_defaults() -> dict[str, Any]:
    found = {f.name: f for f in dataclasses.fields(Schedule)}
    missing = [name for name in SETTABLE_FIELDS if name not in found]
    if missing:  # a typo in SETTABLE_FIELDS must not pass silently
        raise AssertionError(f"SETTABLE_FIELDS names no Schedule field: {missing}")
    return {
        name: None if found[name].default is dataclasses.MISSING else found[name].default
        for name in SETTABLE_FIELDS
    }


#: Each settable field with its default; `task` has none (it is required) and shows as None.
SETTABLE_DEFAULTS: Mapping[str, Any] = _settable_defaults()
#: Settable fields whose default is None, so that None (JSON null) clears them again.
NULLABLE_FIELDS = tuple(
    name for name in SETTABLE_FIELDS if name != "task" and SETTABLE_DEFAULTS[name] is None
)


@dataclass(frozen=True, slots=True)
class FirePlan:
    """What one scheduler pass does with a due schedule.

    `fire_times` get one job each; `record_at` is written as `last_fire_at` (compare-and-set)
    together with `next_fire_at`; `missed` counts due fires the misfire policy dropped (at most 10 000 are counted).
    """

    fire_times: tuple[datetime, ...]
    record_at: datetime | None
    next_fire_at: datetime
    missed: int = 0


def plan_fires(schedule: Schedule, now: datetime, *, timing: Timing | None = None) -> FirePlan:
    """Expand the fires of `schedule` that are due at `now` according to its misfire policy.

    A due fire is on time when `now - fire <= grace` (see `Schedule.grace`) and always runs.
    Older ones were missed (no scheduler was leading, or it was stopped): `skip` drops them,
    `once` runs one catch-up fire carrying the time of the first missed fire, `all` runs the
    most recent `misfire_cap` of them. Every choice depends only on the stored schedule and
    `now`, and a fire time always maps to the same job, so replaying a pass never doubles a fire.
    """
    timing = timing or schedule.timing()
    first = schedule.next_fire_at
    if first is None or first > now:
        return FirePlan((), None, first if first is not None else timing.next_after(now))
    grace = schedule.grace(timing, first)
    cutoff = now - timedelta(seconds=grace)
    on_time = list(timing.fires(max(first, cutoff) - _MICRO, now))
    late: list[datetime] = []
    missed = 0
    if first < cutoff:
        if schedule.misfire is MisfirePolicy.ONCE:
            late = [first]
        elif schedule.misfire is MisfirePolicy.ALL:
            late, missed = _latest_fires(timing, first, cutoff, schedule.misfire_cap)
        else:
            missed = sum(1 for _ in timing.fires(first - _MICRO, cutoff - _MICRO, limit=10_000))
    fires = tuple(late + [f for f in on_time if f not in late])
    record_at = max((*fires, first))
    return FirePlan(fires, record_at, timing.next_after(now), missed)


def _latest_fires(timing: Timing, first: datetime, cutoff: datetime, cap: int) -> tuple[list[datetime], int]:
    """The most recent `cap` fires in [first, cutoff), and a count of the older ones dropped
    (after a long outage only a window ending at `cutoff` is enumerated, so the count is a
    lower bound).
    """
    start = first
    period = max(timing.period_at(first), 1e-3)
    if (cutoff - first).total_seconds() / period > 4 * cap:
        start = max(first, cutoff - timedelta(seconds=2 * cap * period))
    kept: deque[datetime] = deque(maxlen=cap)
    seen = 0
    for fire in timing.fires(start - _MICRO, cutoff - _MICRO, limit=8 * cap + 1000):
        kept.append(fire)
        seen += 1
    return list(kept), max(seen - len(kept), 0) + (1 if start > first else 0)
