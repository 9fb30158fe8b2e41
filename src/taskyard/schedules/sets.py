"""Schedule sets: templates stamped onto an owner (`ScheduleBook.define_set`, `apply_set`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from taskyard.core.names import check_name
from taskyard.core.schedule import MisfirePolicy
from taskyard.errors import ScheduleError

__all__ = ("TEMPLATE_OMITS", "ScheduleTemplate", "check_names", "merge_payload", "template_options")

#: Settable fields a schedule-set template has no field for: `apply_set` gives the owner,
#: and an applied schedule starts enabled.
TEMPLATE_OMITS = ("enabled", "owner")


@dataclass(frozen=True, slots=True)
class ScheduleTemplate:
    """One schedule of a set; applied to owner `O` it becomes schedule `"O:<key>"`, its
    payload merged with the payload given to `apply_set` (the given keys win). Its fields
    are `key` and the settable fields of `Schedule` but `TEMPLATE_OMITS`, with the same
    defaults (a test holds it to that).
    """

    key: str
    task: str
    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    payload: Any = None
    queue: str | None = None
    priority: int | None = None
    jitter: float = 0.0
    misfire: MisfirePolicy | str = MisfirePolicy.SKIP
    misfire_cap: int = 100
    misfire_grace: float | None = None


def check_names(kind: str, value: Any) -> None:
    """`check_name`, as the `ScheduleError` the schedules API raises for every bad input."""
    try:
        check_name(kind, value)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None


def template_options(template: ScheduleTemplate) -> dict[str, Any]:
    """The schedule options of `template` (all its fields but `key`)."""
    return {f.name: getattr(template, f.name) for f in fields(ScheduleTemplate) if f.name != "key"}


def merge_payload(base: Any, extra: Any) -> Any:
    """A template's payload with the payload given to `apply_set` (its keys win)."""
    if extra is None:
        return base
    if isinstance(base, Mapping) and isinstance(extra, Mapping):
        return {**base, **extra}
    return extra
