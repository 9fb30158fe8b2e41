"""The clock-skew warning read at start-up."""

from taskyard.backends.skew import clock_skew_warning


def test_agreeing_clocks_say_nothing() -> None:
    assert clock_skew_warning("redis", 1000.4, 1000.0, 1000.2) is None


def test_skew_beyond_tolerance_and_round_trip_is_named_with_its_direction() -> None:
    ahead = clock_skew_warning("redis", 1005.0, 1000.0, 1000.2)
    assert ahead is not None and "4.9s ahead of" in ahead
    behind = clock_skew_warning("PostgreSQL", 990.0, 1000.0, 1000.0)
    assert behind is not None and "10.0s behind" in behind and behind.startswith("PostgreSQL")


def test_a_slow_round_trip_widens_the_tolerance() -> None:
    # Read somewhere inside a 4 s round trip: 1.5 s off the midpoint proves nothing.
    assert clock_skew_warning("redis", 1003.5, 1000.0, 1004.0) is None
