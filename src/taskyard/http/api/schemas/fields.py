"""The field types every API body shares (names, ids, bounded numbers, UTC date-times) and
the base of request bodies."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from taskyard.core.names import NAME_PATTERN

__all__ = (
    "ID_PATTERN",
    "NAME_PATTERN",
    "TEN_YEARS",
    "Cron",
    "Every",
    "InModel",
    "Jitter",
    "MisfireCap",
    "MisfireGrace",
    "Name",
    "Priority",
    "Tz",
    "UtcDatetime",
)


# NAME_PATTERN (names of tasks, queues, schedules, owners and services) is the one rule
# of core/names.py, re-exported here for the routes.
#: Job ids (26 characters of Crockford base32).
ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
#: Bounds every backend can store (PostgreSQL integers are 32-bit). Numbers are strict
#: throughout: `true` or `"5"` is not an integer (JSON integers are accepted as seconds).
Priority = Annotated[int, Field(strict=True, ge=-1_000_000, le=1_000_000)]
TEN_YEARS = 10 * 365 * 86400
Every = Annotated[float, Field(strict=True, gt=0, le=TEN_YEARS)]
Jitter = Annotated[float, Field(strict=True, ge=0, le=86400)]
MisfireCap = Annotated[int, Field(strict=True, ge=1, le=10_000)]
MisfireGrace = Annotated[float, Field(strict=True, ge=0, le=TEN_YEARS)]
Cron = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Tz = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _iso_text(value: Any) -> Any:
    # pydantic would read a number (or a numeric string, as every query value is) as a Unix
    # timestamp; the documented format is an ISO 8601 date-time with an offset.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMERIC.fullmatch(value.strip())):
        raise ValueError("expected an ISO 8601 date-time with an offset, e.g. 2030-01-01T00:00:00Z")
    return value


_NUMERIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _to_utc(value: datetime) -> datetime:
    # An offset can push a valid local time past year 1 or 9999 once converted.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date is out of range once converted to UTC") from None


#: A timezone-aware datetime, converted to UTC (422 when that leaves datetime's range).
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_to_utc)]


class InModel(BaseModel):
    """A request body: unknown keys are errors (422)."""

    model_config = ConfigDict(extra="forbid")
