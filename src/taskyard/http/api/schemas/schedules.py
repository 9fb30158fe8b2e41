"""API bodies of schedules and schedule sets, held to `core.schedule.SETTABLE_FIELDS`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from taskyard.core.payload import bounded
from taskyard.core.schedule import NULLABLE_FIELDS, SETTABLE_FIELDS, MisfirePolicy, Schedule
from taskyard.http.api.schemas.fields import (
    Cron,
    Every,
    InModel,
    Jitter,
    MisfireCap,
    MisfireGrace,
    Name,
    Priority,
    Tz,
)

__all__ = (
    "ApplySetRequest",
    "RemovedOut",
    "ScheduleCreate",
    "ScheduleOut",
    "SchedulePatch",
)


# The fields of these two models are the settable fields of `Schedule`
# (`core.schedule.SETTABLE_FIELDS`) with the API's bounds; tests hold them to that list and
# to its defaults.
class ScheduleCreate(InModel):
    """A runtime schedule: exactly one of `cron` and `every` (seconds). `misfire_grace`:
    seconds a fire may be late and still run (default half the period, at most 60 s)."""

    name: Name
    task: Name
    cron: Cron | None = None
    every: Every | None = None
    tz: Tz = "UTC"
    payload: Any = None
    queue: Name | None = None
    priority: Priority | None = None
    jitter: Jitter = 0.0
    misfire: MisfirePolicy = MisfirePolicy.SKIP
    misfire_cap: MisfireCap = 100
    misfire_grace: MisfireGrace | None = None
    enabled: StrictBool = True
    owner: Name | None = None


class SchedulePatch(InModel):
    """Fields to change on a schedule; those left out stay as they are. `null` clears `cron`,
    `every`, `payload`, `queue`, `priority`, `misfire_grace` and `owner`; the other fields
    cannot be null.
    """

    task: Name | SkipJsonSchema[None] = None
    cron: Cron | None = None
    every: Every | None = None
    tz: Tz | SkipJsonSchema[None] = None
    payload: Any = None
    queue: Name | None = None
    priority: Priority | None = None
    jitter: Jitter | SkipJsonSchema[None] = None
    misfire: MisfirePolicy | SkipJsonSchema[None] = None
    misfire_cap: MisfireCap | SkipJsonSchema[None] = None
    misfire_grace: MisfireGrace | None = None
    enabled: StrictBool | SkipJsonSchema[None] = None
    owner: Name | None = None

    @field_validator(*(f for f in SETTABLE_FIELDS if f not in NULLABLE_FIELDS), mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # None here only means "left out"; an explicit null would be stored as is.
        if value is None:
            raise ValueError("must not be null (leave the field out to keep its value)")
        return value


class ScheduleOut(BaseModel):
    """A stored schedule; `next_fires` (the next five fire times) on single reads."""

    name: str
    task: str
    cron: str | None
    every: float | None
    tz: str
    payload: Any
    queue: str | None
    priority: int | None
    jitter: float
    misfire: MisfirePolicy
    misfire_cap: int
    misfire_grace: float | None = None
    enabled: bool
    owner: str | None
    source: str
    last_fire_at: datetime | None
    next_fire_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    declarer: str | None = Field(
        default=None, description='Source "code": the app and process that stored this definition.'
    )
    declarer_started_at: datetime | None = Field(
        default=None, description="When that process started declaring (the newest starter's definition wins).",
    )
    confirmed_at: datetime | None = Field(
        default=None,
        description='Source "code": when a running scheduler last confirmed it still declares it; '
        "unconfirmed for scheduler.declared_grace, it is removed.",
    )
    task_defaults: dict[str, Any] | None = Field(
        default=None,
        description="The task's queue, priority, max_attempts, max_rescues and timeout as the storing process "
        "knew them: a scheduler of another app version that does not know the task fires with these.",
    )
    next_fires: list[datetime] | None = None

    @classmethod
    def of(cls, schedule: Schedule, next_fires: list[datetime] | None = None) -> ScheduleOut:
        """From the core record."""
        data = {k: v for k, v in schedule.to_json().items() if k in cls.model_fields}
        data["payload"] = bounded(data["payload"])
        return cls.model_validate({**data, "next_fires": next_fires})


class ApplySetRequest(InModel):
    """Replace an owner's schedules with those of a schedule set."""

    owner: Name
    payload: dict[str, Any] | None = None


class RemovedOut(BaseModel):
    """How many objects were removed."""

    removed: int
