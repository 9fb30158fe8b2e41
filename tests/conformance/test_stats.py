"""Per-minute outcome statistics."""

from __future__ import annotations

from datetime import timedelta

from taskyard.backends.protocol import Backend
from taskyard.core.queue import LATENCY_BOUNDS, STATS_RETENTION, DepthRow, StatsRow

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


def _histogram(**cells: int) -> tuple[int, ...]:
    """A full latency histogram with `c<i>=count` cells set."""
    out = [0] * (len(LATENCY_BOUNDS) + 1)
    for name, n in cells.items():
        out[int(name[1:])] = n
    return tuple(out)


async def test_stats_per_task_and_latency_cells_are_summed(backend: Backend) -> None:
    m0 = T0
    await backend.stats_record(rows=[
        StatsRow(m0, "a", 1, 0, task="send"),
        StatsRow(m0, "a", 0, 2, task="bill", latency=_histogram(c0=1, c13=2)),
        StatsRow(m0, "a", 4, 0),  # a writer that does not count tasks apart
    ])
    await backend.stats_record(rows=[
        StatsRow(m0, "a", 1, 1, task="send", latency=_histogram(c3=5)),
        StatsRow(m0, "a", 0, 0, task="bill", latency=_histogram(c0=2, c5=1)),
    ])
    assert await backend.stats_read(since=m0) == [
        StatsRow(m0, "a", 4, 0),
        StatsRow(m0, "a", 0, 2, task="bill", latency=_histogram(c0=3, c5=1, c13=2)),
        StatsRow(m0, "a", 2, 1, task="send", latency=_histogram(c3=5)),
    ]


async def test_stats_are_kept_seven_days_behind_the_newest_minute(backend: Backend) -> None:
    old, kept = T0 - STATS_RETENTION - timedelta(minutes=1), T0 - STATS_RETENTION + timedelta(minutes=1)
    await backend.stats_record(rows=[StatsRow(old, "a", 1, 0, task="t", latency=_histogram(c1=1)),
                                     StatsRow(kept, "a", 2, 0, task="t", latency=_histogram(c2=1))])
    assert len(await backend.stats_read(since=old)) == 2  # nothing newer was written yet
    await backend.stats_record(rows=[StatsRow(T0, "a", 3, 0)])
    assert await backend.stats_read(since=old) == [
        StatsRow(kept, "a", 2, 0, task="t", latency=_histogram(c2=1)), StatsRow(T0, "a", 3, 0)]


async def test_depth_samples_replace_and_are_pruned(backend: Backend) -> None:
    m0, m1 = T0, T0 + timedelta(minutes=1)
    await backend.stats_record_depth(rows=[DepthRow(m0, "b", 7), DepthRow(m0, "a", 3)])
    await backend.stats_record_depth(rows=[DepthRow(m0, "a", 1), DepthRow(m1, "a", 0)])
    assert await backend.stats_read_depth(since=m0) == [DepthRow(m0, "a", 1), DepthRow(m0, "b", 7), DepthRow(m1, "a", 0)]
    assert await backend.stats_read_depth(since=m1) == [DepthRow(m1, "a", 0)]
    # Depth samples are not outcome rows.
    assert await backend.stats_read(since=m0) == []
    await backend.stats_record_depth(rows=[DepthRow(m0 + STATS_RETENTION + timedelta(minutes=1), "a", 2)])
    assert [r.minute for r in await backend.stats_read_depth(since=m0)] == [m1, m0 + STATS_RETENTION + timedelta(minutes=1)]


async def test_stats_are_summed_into_bins_aligned_to_the_epoch(backend: Backend) -> None:
    # T0 is 12:00 UTC: 15-minute bins start at 12:00, 12:15...
    rows = [
        StatsRow(T0 + timedelta(minutes=1), "a", 1, 0, task="t", latency=_histogram(c1=1)),
        StatsRow(T0 + timedelta(minutes=14), "a", 2, 1, task="t", latency=_histogram(c1=2, c4=1)),
        StatsRow(T0 + timedelta(minutes=15), "a", 4, 0, task="t"),
        StatsRow(T0 + timedelta(minutes=16), "b", 8, 0),
    ]
    await backend.stats_record(rows=rows)
    assert await backend.stats_read(since=T0, bin_minutes=15) == [
        StatsRow(T0, "a", 3, 1, task="t", latency=_histogram(c1=3, c4=1)),
        StatsRow(T0 + timedelta(minutes=15), "a", 4, 0, task="t"),
        StatsRow(T0 + timedelta(minutes=15), "b", 8, 0),
    ]
    assert await backend.stats_read(since=T0, bin_minutes=120) == [
        StatsRow(T0, "a", 7, 1, task="t", latency=_histogram(c1=3, c4=1)),
        StatsRow(T0, "b", 8, 0),
    ]
    assert await backend.stats_read(since=T0, bin_minutes=1) == await backend.stats_read(since=T0)
