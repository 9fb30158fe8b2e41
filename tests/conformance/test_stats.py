"""Per-minute outcome statistics."""

from __future__ import annotations

from datetime import timedelta

from taskyard.backends.protocol import Backend
from taskyard.core.queue import StatsRow

from .factory import T0


async def test_stats_are_summed_and_sorted(backend: Backend) -> None:
    m0, m1 = T0, T0 + timedelta(minutes=1)
    await backend.stats_record(rows=[StatsRow(m1, "b", 1, 0), StatsRow(m0, "a", 2, 1)])
    await backend.stats_record(rows=[StatsRow(m0, "a", 3, 4), StatsRow(m1, "a", 0, 1)])
    rows = await backend.stats_read(since=m0)
    assert rows == [StatsRow(m0, "a", 5, 5), StatsRow(m1, "a", 0, 1), StatsRow(m1, "b", 1, 0)]
    assert await backend.stats_read(since=m1) == [StatsRow(m1, "a", 0, 1), StatsRow(m1, "b", 1, 0)]
    assert await backend.stats_read(since=m1 + timedelta(minutes=1)) == []


async def test_stats_empty(backend: Backend) -> None:
    await backend.stats_record(rows=[])
    assert await backend.stats_read(since=T0 - timedelta(hours=1)) == []
