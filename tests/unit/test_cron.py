"""Cron and interval timing: field semantics, aliases, seconds, DST, validation."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskyard.core.cron import Timing, load_zone, next_service_tick, validate_service_interval
from taskyard.errors import ScheduleError

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def local(timing: Timing, start: datetime, n: int) -> list[str]:
    zone = ZoneInfo(timing.tz)
    return [f.astimezone(zone).isoformat() for f in timing.next_n(start, n)]


def days(timing: Timing, start: datetime, n: int) -> list[str]:
    return [f.date().isoformat() for f in timing.next_n(start, n)]


START = datetime(2026, 2, 1, tzinfo=UTC)  # a Sunday


def test_day_of_month_and_day_of_week_are_or_when_both_restricted() -> None:
    # the 1st, the 15th, or any Monday
    assert days(Timing(cron="0 0 1,15 * 1"), START, 5) == [
        "2026-02-02", "2026-02-09", "2026-02-15", "2026-02-16", "2026-02-23",
    ]


def test_a_star_field_makes_day_fields_an_and_like_vixie_cron() -> None:
    assert days(Timing(cron="0 0 * * 1"), START, 2) == ["2026-02-02", "2026-02-09"]
    # '*/2' starts with '*': odd days that are Mondays (Vixie/ISC cron behaviour)
    assert days(Timing(cron="0 0 */2 * 1"), START, 2) == ["2026-02-09", "2026-02-23"]


def test_last_day_of_month_including_leap_years() -> None:
    assert days(Timing(cron="0 12 L * *"), START, 4) == [
        "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31",
    ]
    assert days(Timing(cron="0 0 L 2 *"), START, 3) == ["2026-02-28", "2027-02-28", "2028-02-29"]


def test_sixth_field_is_seconds() -> None:
    timing = Timing(cron="* * * * * 15,45")
    assert [f.isoformat() for f in timing.next_n(START, 3)] == [
        "2026-02-01T00:00:15+00:00", "2026-02-01T00:00:45+00:00", "2026-02-01T00:01:15+00:00",
    ]
    every_second = Timing(cron="* * * * * *")
    assert every_second.next_after(START) == START + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("alias", "first"),
    [
        ("@hourly", "2026-02-01T01:00:00+00:00"),
        ("@daily", "2026-02-02T00:00:00+00:00"),
        ("@midnight", "2026-02-02T00:00:00+00:00"),
        ("@weekly", "2026-02-08T00:00:00+00:00"),
        ("@monthly", "2026-03-01T00:00:00+00:00"),
        ("@yearly", "2027-01-01T00:00:00+00:00"),
        ("@annually", "2027-01-01T00:00:00+00:00"),
    ],
)
def test_aliases(alias: str, first: str) -> None:
    assert Timing(cron=alias).next_after(START).isoformat() == first


def test_next_is_strictly_after() -> None:
    timing = Timing(cron="0 * * * *")
    at = datetime(2026, 2, 1, 5, tzinfo=UTC)
    assert timing.next_after(at) == at + timedelta(hours=1)
    assert timing.next_after(at - timedelta(microseconds=1)) == at


def test_time_zone_shifts_the_wall_clock() -> None:
    timing = Timing(cron="30 6 * * *", tz="Europe/Berlin")
    assert timing.next_after(START) == datetime(2026, 2, 1, 5, 30, tzinfo=UTC)


# -- DST: spring forward (America/New_York 2026-03-08 02:00 -> 03:00) --------------------------
SPRING = datetime(2026, 3, 7, 12, tzinfo=UTC)


def test_fixed_time_in_skipped_hour_fires_once_at_the_jump() -> None:
    assert local(Timing(cron="30 2 * * *", tz="America/New_York"), SPRING, 3) == [
        "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00",
    ]
    # two fixed times in the gap still make one fire; a fixed 03:00 is the same instant
    assert local(Timing(cron="0,30 2,3 * * *", tz="America/New_York"), SPRING, 4) == [
        "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00",
        "2026-03-09T02:00:00-04:00", "2026-03-09T02:30:00-04:00",
    ]


def test_hourly_stays_hourly_across_spring_forward() -> None:
    fires = Timing(cron="30 * * * *", tz="America/New_York").next_n(
        datetime(2026, 3, 8, 5, tzinfo=UTC), 4
    )
    assert [f.astimezone(NY).strftime("%H:%M%z") for f in fires] == [
        "00:30-0500", "01:30-0500", "03:30-0400", "04:30-0400",
    ]
    assert {b - a for a, b in itertools.pairwise(fires)} == {timedelta(hours=1)}


# -- DST: fall back (America/New_York 2026-11-01 02:00 -> 01:00) -------------------------------
FALL = datetime(2026, 10, 31, 12, tzinfo=UTC)


def test_fixed_time_in_repeated_hour_fires_once() -> None:
    assert local(Timing(cron="30 1 * * *", tz="America/New_York"), FALL, 3) == [
        "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00",
    ]


def test_fixed_time_from_inside_the_second_pass_does_not_fire_again() -> None:
    second_pass = datetime(2026, 11, 1, 1, 10, tzinfo=NY).replace(fold=1)
    timing = Timing(cron="30 1 * * *", tz="America/New_York")
    assert timing.next_after(second_pass.astimezone(UTC)).astimezone(NY).isoformat() == (
        "2026-11-02T01:30:00-05:00"
    )


def test_hourly_fires_at_each_real_hour_across_fall_back() -> None:
    fires = Timing(cron="30 * * * *", tz="America/New_York").next_n(
        datetime(2026, 11, 1, 4, tzinfo=UTC), 5
    )
    assert {b - a for a, b in itertools.pairwise(fires)} == {timedelta(hours=1)}
    assert [f.astimezone(NY).strftime("%H:%M%z") for f in fires] == [
        "00:30-0400", "01:30-0400", "01:30-0500", "02:30-0500", "03:30-0500",
    ]


def test_step_minutes_resume_correctly_from_either_pass() -> None:
    timing = Timing(cron="*/20 * * * *", tz="America/New_York")
    first_pass = datetime(2026, 11, 1, 5, 50, tzinfo=UTC)  # 01:50 EDT
    assert timing.next_after(first_pass).astimezone(NY).strftime("%H:%M%z") == "01:00-0500"
    second_pass = datetime(2026, 11, 1, 6, 50, tzinfo=UTC)  # 01:50 EST
    assert timing.next_after(second_pass).astimezone(NY).strftime("%H:%M%z") == "02:00-0500"


def test_europe_both_changes_for_a_daily_fixed_time() -> None:
    timing = Timing(cron="30 2 * * *", tz="Europe/Berlin")
    spring = timing.next_n(datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    assert [f.astimezone(BERLIN).isoformat() for f in spring] == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00",
    ]
    autumn = timing.next_n(datetime(2026, 10, 24, 12, tzinfo=UTC), 2)
    assert [f.astimezone(BERLIN).isoformat() for f in autumn] == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00",
    ]


# -- intervals ---------------------------------------------------------------------------------
def test_every_is_aligned_to_the_epoch() -> None:
    timing = Timing(every=60)
    assert timing.next_after(datetime(2026, 2, 1, 0, 0, 30, tzinfo=UTC)) == datetime(
        2026, 2, 1, 0, 1, tzinfo=UTC
    )
    half = Timing(every=0.5)
    at = datetime(2026, 2, 1, tzinfo=UTC)
    assert [f - at for f in half.next_n(at, 3)] == [
        timedelta(seconds=0.5), timedelta(seconds=1), timedelta(seconds=1.5),
    ]


def test_fires_between_is_half_open() -> None:
    timing = Timing(every=10)
    at = datetime(2026, 2, 1, tzinfo=UTC)
    assert list(timing.fires(at, at + timedelta(seconds=30))) == [
        at + timedelta(seconds=s) for s in (10, 20, 30)
    ]


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "61 * * * *"}, "invalid cron"),
        ({"cron": "* * * *"}, "has 4 fields"),
        ({"cron": "* * * * * * *"}, "has 7 fields"),
        ({"cron": "@fortnightly"}, "unknown cron alias"),
        ({"cron": ""}, "non-empty"),
        ({"cron": "0 0 30 2 *"}, "never fires"),
        ({"cron": "0 0 31 4 *"}, "never fires"),
        ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"every": 0}, "> 0"),
        ({"every": -5}, "> 0"),
        ({"every": float("nan")}, "> 0"),
        ({"every": "10"}, "number of seconds"),
        ({}, "exactly one"),
        ({"cron": "* * * * *", "every": 5}, "exactly one"),
    ],
)
def test_invalid_timings_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        Timing(**kwargs)  # type: ignore[arg-type]


def test_service_interval_helpers_still_work() -> None:
    validate_service_interval("*/5 * * * *")
    with pytest.raises(ValueError):
        validate_service_interval("nope")
    assert next_service_tick("*/5 * * * *", datetime(2026, 2, 1, 0, 1, tzinfo=UTC)) == datetime(
        2026, 2, 1, 0, 5, tzinfo=UTC
    )


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory", "Mars/Base", "../etc/passwd"])
def test_machine_dependent_and_unknown_zone_names_are_refused(name: str) -> None:
    with pytest.raises(ScheduleError, match=repr(name)):
        load_zone(name)
