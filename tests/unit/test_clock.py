"""`Clock.backend_now`: the real clock lets the store judge times; a fake clock keeps its own."""

from __future__ import annotations

from datetime import UTC, datetime

from taskyard.clock import FakeClock, SystemClock


def test_the_system_clock_defers_to_the_store_and_a_fake_clock_does_not() -> None:
    assert SystemClock().backend_now() is None
    fake = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    fake.advance(90)
    assert fake.backend_now() == fake.now() == datetime(2030, 1, 1, 0, 1, 30, tzinfo=UTC)
