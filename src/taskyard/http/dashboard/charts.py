"""Charts of the last hour, drawn on the server as SVG geometry: throughput and failures per
minute (from `backend.stats_read`) and queue depth (sampled while the dashboard is open).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskyard.core.queue import StatsRow

__all__ = ("Bar", "Chart", "DepthHistory", "bar_chart", "minute_series")

WIDTH, HEIGHT, PAD = 600, 120, 4
WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: position, size, and its tooltip."""

    x: float
    y: float
    w: float
    h: float
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    """What a template needs to draw one chart."""

    title: str
    css: str
    bars: list[Bar] = field(default_factory=list)
    peak: int = 0
    total: int = 0
    width: int = WIDTH
    height: int = HEIGHT
    start_label: str = ""
    end_label: str = ""
    #: The caption's numbers, in the chart's own unit (a count per minute, or a depth).
    summary: str = ""


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def minute_series(rows: list[StatsRow], now: datetime) -> tuple[list[datetime], list[int], list[int]]:
    """Completed and failed counts per minute for the 60 minutes ending now (all queues)."""
    end = _minute(now)
    minutes = [end - timedelta(minutes=59 - i) for i in range(60)]
    index = {m: i for i, m in enumerate(minutes)}
    completed, failed = [0] * 60, [0] * 60
    for row in rows:
        i = index.get(_minute(row.minute))
        if i is not None:
            completed[i] += row.completed
            failed[i] += row.failed
    return minutes, completed, failed


def bar_chart(title: str, css: str, minutes: list[datetime], values: list[int]) -> Chart:
    """Bars scaled to the window's peak (at least 1, so an idle hour draws flat)."""
    peak = max(values, default=0)
    scale = (HEIGHT - 2 * PAD) / max(peak, 1)
    slot = WIDTH / max(len(values), 1)
    bars = [
        Bar(
            x=round(i * slot + 0.5, 2),
            y=round(HEIGHT - PAD - v * scale, 2),
            w=round(max(slot - 1, 1), 2),
            h=round(v * scale, 2),
            title=f"{m:%H:%M} UTC: {v}",
        )
        for i, (m, v) in enumerate(zip(minutes, values, strict=True))
    ]
    return Chart(
        title=title,
        css=css,
        bars=bars,
        peak=peak,
        total=sum(values),
        summary=f"{sum(values)} in the hour · peak {peak}/min",
        start_label=f"{minutes[0]:%H:%M}" if minutes else "",
        end_label=f"{minutes[-1]:%H:%M} UTC" if minutes else "",
    )


class DepthHistory:
    """Waiting-job counts sampled at most once per 10 s, one hour kept.

    The backends store no depth history, so this one lives in the process serving the
    dashboard: a `DepthSampler` fills it (and the pages, as they are viewed); the chart shows
    each minute's highest sample, so a backlog that drained within the minute still shows.
    """

    def __init__(self) -> None:
        self._samples: deque[tuple[datetime, int]] = deque()
        self._latest = 0

    def record(self, now: datetime, depth: int) -> None:
        """Add a sample, or fold it into the last one (keeping the higher) when that is under
        10 seconds old, so the sampler and page views never erase each other's peaks; drop
        samples past an hour."""
        self._latest = depth
        if not self._samples or (now - self._samples[-1][0]) >= timedelta(seconds=10):
            self._samples.append((now, depth))
        else:
            at, seen = self._samples[-1]
            self._samples[-1] = (at, max(seen, depth))
        while self._samples and now - self._samples[0][0] > WINDOW:
            self._samples.popleft()

    def chart(self, now: datetime) -> Chart:
        """Per-minute peak depth for the last hour (minutes without a sample show 0); the
        chart's total is the latest sample. A depth is a count of waiting jobs, not a rate."""
        end = _minute(now)
        minutes = [end - timedelta(minutes=59 - i) for i in range(60)]
        per_minute: dict[datetime, int] = {}
        for at, depth in self._samples:
            per_minute[_minute(at)] = max(depth, per_minute.get(_minute(at), 0))
        chart = bar_chart("Queue depth", "depth", minutes, [per_minute.get(m, 0) for m in minutes])
        latest = self._latest if self._samples else 0
        return dataclasses.replace(chart, total=latest, summary=f"{latest} waiting now · peak {chart.peak} waiting")
