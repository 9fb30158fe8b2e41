"""The overview's chart geometry (http/dashboard/charts.py): bins, scales, stacking, readouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskyard.core.queue import LATENCY_BOUNDS, DepthRow, StatsRow
from taskyard.http.dashboard.charts import (
    depth_chart,
    latency_chart,
    outcome_chart,
    seconds_label,
    window,
)

NOW = datetime(2026, 11, 22, 12, 34, 56, tzinfo=UTC)


def test_each_range_has_its_bins_ending_with_the_one_that_holds_now() -> None:
    for name, count, step in (("15m", 15, 1), ("1h", 60, 1), ("24h", 96, 15), ("7d", 84, 120)):
        win = window(name, NOW)
        assert len(win.starts) == count
        assert win.step == timedelta(minutes=step)
        assert win.starts[-1] <= NOW < win.starts[-1] + win.step
    assert window("24h", NOW).label(95) == "12:30\u201312:45 UTC"
    assert window("1h", NOW).index(NOW - timedelta(hours=2)) is None


def test_outcomes_stack_by_queue_with_a_round_scale_and_readouts() -> None:
    minute = NOW.replace(second=0, microsecond=0)
    rows = [StatsRow(minute, "a", 7, 0, task="t1"), StatsRow(minute, "b", 4, 0, task="t2"),
            StatsRow(minute - timedelta(days=1), "a", 50, 0)]
    chart = outcome_chart("completed", window("1h", NOW), rows, "queue")
    assert [label for _, label in chart.yticks] == ["0", "10", "20"]
    assert len(chart.rects) == 2  # the day-old row is outside the hour
    assert chart.hits[-1].readout == "12:34 UTC: 11 jobs completed / min (a 7, b 4)"
    assert chart.summary == "11 completed in 1 h · peak 11 / min"
    by_task = outcome_chart("completed", window("7d", NOW), rows, "task")
    assert [name for _, name in by_task.legend] == ["(not recorded)", "t1", "t2"]


def test_more_than_five_series_sum_the_rest_as_other() -> None:
    minute = NOW.replace(second=0, microsecond=0)
    rows = [StatsRow(minute, f"q{i}", 10 - i, 0) for i in range(8)]
    chart = outcome_chart("completed", window("15m", NOW), rows, "queue")
    assert [name for _, name in chart.legend] == ["q0", "q1", "q2", "q3", "q4", "other"]
    assert "other 12" in chart.hits[-1].readout  # 5 + 4 + 3


def test_latency_quantiles_per_bin_and_depth_peaks() -> None:
    minute = NOW.replace(second=0, microsecond=0)
    cells = [0] * (len(LATENCY_BOUNDS) + 1)
    cells[2], cells[6] = 18, 2
    chart = latency_chart(window("1h", NOW), [StatsRow(minute, "a", latency=tuple(cells))])
    assert chart.hits[-1].readout == "12:34 UTC: p50 ≤ 100 ms, p95 ≤ 2.5 s (20 started)"
    assert chart.hits[0].readout.endswith("no job started")
    depth = depth_chart(window("24h", NOW), [DepthRow(minute - timedelta(minutes=3), "a", 9), DepthRow(minute, "a", 4)])
    assert depth.summary == "4 waiting at the last sample · peak 9"
    assert seconds_label(0.05) == "50 ms" and seconds_label(90) == "1.5 min" and seconds_label(None) == "—"
