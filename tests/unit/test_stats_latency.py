"""The latency histogram's cells and quantiles (core.queue)."""

from __future__ import annotations

import pytest

from taskyard.clock import utcnow
from taskyard.core.queue import (
    LATENCY_BOUNDS,
    StatsRow,
    latency_bucket,
    latency_histogram,
    latency_quantile,
)


def test_buckets_are_upper_bounds() -> None:
    assert latency_bucket(-3) == 0
    assert latency_bucket(0.01) == 0
    assert latency_bucket(0.011) == 1
    assert latency_bucket(10**6) == len(LATENCY_BOUNDS)


def test_quantiles_report_the_cell_bound() -> None:
    h = latency_histogram({0: 50, 5: 45, 9: 5})
    assert latency_quantile(h, 0.5) == LATENCY_BOUNDS[0]
    assert latency_quantile(h, 0.95) == LATENCY_BOUNDS[5]
    assert latency_quantile(h, 0.99) == LATENCY_BOUNDS[9]
    assert latency_quantile((), 0.5) is None
    assert latency_histogram({3: 0}) == ()


def test_a_histogram_has_one_cell_per_bound_and_one_more() -> None:
    with pytest.raises(ValueError, match="cells"):
        StatsRow(utcnow(), "q", latency=(1, 2))
