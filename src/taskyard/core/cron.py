"""Cron expressions and intervals: validation and fire times, DST-correct (pure functions).

Cron fields are evaluated on the local wall clock of an IANA zone (croniter does the calendar
arithmetic on naive wall times); this module maps wall times to real instants the way classic
cron daemons do across a DST change (see `Timing`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from taskyard.errors import ScheduleError

__all__ = (
    "ALIASES",
    "Timing",
    "load_zone",
    "next_service_tick",
    "normalize_cron",
    "validate_service_interval",
)

#: Aliases accepted in place of an expression, and what they stand for.
ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# How far croniter may look for a match before we call an expression impossible (30 Feb).
_MAX_YEARS = 8
_MICRO = timedelta(microseconds=1)


def validate_service_interval(expr: str) -> None:
    """Raise ValueError naming the problem when `expr` is not a valid cron expression."""
    if not isinstance(expr, str) or not croniter.is_valid(expr.strip()):
        raise ValueError(f"invalid cron expression {expr!r}")


def next_service_tick(expr: str, now: datetime) -> datetime:
    """The first fire time of `expr` (UTC) strictly after `now`."""
    base = now.astimezone(UTC)
    nxt: datetime = croniter(expr.strip(), base).get_next(datetime)
    return nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)


def normalize_cron(expr: str) -> str:
    """The 5- or 6-field form of `expr` (aliases expanded, whitespace collapsed).

    Raises `ScheduleError` for anything that is not 5 fields (minute hour day-of-month month
    day-of-week), 6 fields (the 6th is seconds) or a known alias.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError("cron expression must be a non-empty string")
    text = " ".join(expr.split())
    if text.startswith("@"):
        alias = ALIASES.get(text.lower())
        if alias is None:
            raise ScheduleError(
                f"unknown cron alias {text!r}; known: {', '.join(sorted(ALIASES))}"
            )
        return alias
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise ScheduleError(
            f"cron expression {expr!r} has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week) or 6 (the 6th is seconds)"
        )
    if not croniter.is_valid(text):
        raise ScheduleError(f"invalid cron expression {expr!r}")
    return text


#: Names the zone database may hold that are not zones: what they mean depends on the machine.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def load_zone(tz: str) -> ZoneInfo:
    """The IANA zone `tz`, or `ScheduleError`."""
    if not isinstance(tz, str) or not tz:
        raise ScheduleError("time zone must be a non-empty IANA name such as 'Europe/Paris'")
    if tz in _NOT_ZONES:
        raise ScheduleError(
            f"time zone {tz!r} means whatever the machine is set to; name the zone (such as 'Europe/Paris')"
        )
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {tz!r} (expected an IANA name such as 'Europe/Paris')") from exc


@dataclass(frozen=True)
class Timing:
    """When a schedule fires: a cron expression on the wall clock of `tz`, or `every` seconds.

    `every` fires at whole multiples of the interval since the Unix epoch (UTC), so every
    replica computes the same instants and restarts never shift them.

    DST, as classic cron daemons do it: a wall time that does not exist (skipped hour) fires
    once at the first instant after the jump when the hour field is fixed (`30 2 * * *`), and
    not at all when the hour field is a wildcard or step (`30 * * * *` keeps firing every real
    hour); a wall time that occurs twice (repeated hour) fires once, at its first occurrence,
    when the hour is fixed, and at both real instants when the hour is a wildcard or step.
    """

    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    _zone: tzinfo = field(init=False, repr=False, compare=False)
    _wild_hour: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ScheduleError("give exactly one of cron= or every=")
        object.__setattr__(self, "_zone", load_zone(self.tz))
        if self.every is not None:
            if isinstance(self.every, bool) or not isinstance(self.every, int | float):
                raise ScheduleError(f"every must be a number of seconds, not {self.every!r}")
            if not math.isfinite(self.every) or self.every <= 0:
                raise ScheduleError(f"every must be > 0 seconds, not {self.every!r}")
            if self.every < 0.001:
                raise ScheduleError("every must be at least 0.001 seconds")
            object.__setattr__(self, "_wild_hour", True)
            return
        expr = normalize_cron(self.cron)  # type: ignore[arg-type]
        object.__setattr__(self, "cron", expr)
        hour = expr.split(" ")[1]
        object.__setattr__(self, "_wild_hour", "*" in hour or "/" in hour)
        # An expression that can never match (30 February) is an error, not a silent no-op.
        try:
            self._cron_iter(datetime(2000, 1, 1)).get_next(datetime)
        except (CroniterBadDateError, CroniterError, ValueError) as exc:
            raise ScheduleError(f"cron expression {self.cron!r} never fires") from exc

    # -- public ------------------------------------------------------------------------------
    def next_after(self, after: datetime) -> datetime:
        """The first fire instant (aware, UTC) strictly after `after`."""
        after = _aware(after)
        if self.every is not None:
            step = round(self.every * 1_000_000)
            micros = _epoch_micros(after)
            return _from_epoch_micros((micros // step + 1) * step)
        return self._cron_next(after)

    def fires(self, after: datetime, until: datetime, *, limit: int = 10_000) -> Iterator[datetime]:
        """Fire instants in (`after`, `until`], in order, at most `limit` of them."""
        current = _aware(after)
        until = _aware(until)
        for _ in range(limit):
            current = self.next_after(current)
            if current > until:
                return
            yield current

    def next_n(self, after: datetime, n: int) -> list[datetime]:
        """The next `n` fire instants after `after`."""
        out: list[datetime] = []
        current = _aware(after)
        for _ in range(n):
            current = self.next_after(current)
            out.append(current)
        return out

    def period_at(self, fire: datetime) -> float:
        """Seconds from `fire` to the following fire (the schedule's local period)."""
        if self.every is not None:
            return float(self.every)
        return (self.next_after(fire) - fire).total_seconds()

    # -- cron on a wall clock ----------------------------------------------------------------
    def _cron_iter(self, base: datetime) -> croniter:
        # implement_cron_bug: like Vixie/ISC cron, a day-of-month or day-of-week field that
        # starts with '*' (such as '*/2') makes the two fields an AND instead of an OR.
        return croniter(
            self.cron, base, day_or=True, implement_cron_bug=True,
            max_years_between_matches=_MAX_YEARS,
        )

    def _instants(self, wall: datetime) -> list[datetime]:
        """The real instants (UTC, in order) at which wall time `wall` fires."""
        zone = self._zone
        first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first.astimezone(zone).replace(tzinfo=None) != wall:
            # `wall` is in a skipped hour (zoneinfo maps fold=0 past the jump).
            if self._wild_hour:
                return []
            return [_transition(min(first, second), max(first, second), zone)]
        return [first, second] if self._wild_hour else [first]

    def _cron_next(self, after: datetime) -> datetime:
        zone = self._zone
        local = after.astimezone(zone)
        wall = local.replace(tzinfo=None)
        best = self._scan(wall, after)
        # Inside a repeated hour the wall clock is not monotonic in real time: the second pass
        # of wall times earlier than `wall` may still lie ahead (first pass), and wall times of
        # the first pass after `wall` are already past (second pass).
        lo = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        hi = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if lo < hi:
            switch = _transition(lo, hi, zone)
            offset_before = (switch - _MICRO).astimezone(zone).utcoffset()
            offset_after = switch.astimezone(zone).utcoffset()
            assert offset_before is not None and offset_after is not None
            start = (switch + offset_after).replace(tzinfo=None)
            end = (switch + offset_before).replace(tzinfo=None)
            if local.fold == 0 and self._wild_hour:
                candidate = self._scan(start - _MICRO, after, until=end)
            elif local.fold == 1:
                candidate = self._scan(end - _MICRO, after)
            else:
                candidate = None
            if candidate is not None and (best is None or candidate < best):
                best = candidate
        if best is None:
            raise ScheduleError(f"cron expression {self.cron!r} has no fire after {after.isoformat()}")
        return best

    def _scan(self, base: datetime, after: datetime, until: datetime | None = None) -> datetime | None:
        """First instant > `after` of the wall times following `base` (optionally < `until`)."""
        try:
            it = self._cron_iter(base)
            for _ in range(1_000_000):
                wall: datetime = it.get_next(datetime)
                if until is not None and wall >= until:
                    return None
                found = [t for t in self._instants(wall) if t > after]
                if found:
                    return found[0]
        except CroniterBadDateError:
            return None
        return None


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("datetimes given to Timing must be timezone-aware")
    return when.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_micros(when: datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_epoch_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _transition(lo: datetime, hi: datetime, zone: tzinfo) -> datetime:
    """The instant in (lo, hi] where the zone's UTC offset changes (to the microsecond)."""
    target = hi.astimezone(zone).utcoffset()
    while hi - lo > _MICRO:
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return hi

