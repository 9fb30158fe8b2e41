"""The overview's charts, drawn on the server as SVG geometry from the backend's statistics
(`stats_read`, `stats_read_depth`), so every replica draws the same: throughput, failures,
enqueue→start latency (p50/p95) and queue depth over a chosen range, broken down by queue or
task, with axes, units and a readout per time bin."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskyard.core.queue import LATENCY_BOUNDS, DepthRow, StatsRow, latency_quantile

__all__ = (
    "BREAKDOWNS", "RANGES", "Chart", "Window", "depth_chart", "latency_chart", "outcome_chart",
    "palette", "seconds_label", "series_key", "window",
)

WIDTH, HEIGHT = 600, 170
LEFT, RIGHT, TOP, BOTTOM = 46, 8, 8, 22
#: Range name -> (label, span, bin size).
RANGES: dict[str, tuple[str, timedelta, timedelta]] = {
    "15m": ("15 min", timedelta(minutes=15), timedelta(minutes=1)),
    "1h": ("1 h", timedelta(hours=1), timedelta(minutes=1)),
    "24h": ("24 h", timedelta(days=1), timedelta(minutes=15)),
    "7d": ("7 d", timedelta(days=7), timedelta(hours=2)),
}
BREAKDOWNS = {"queue": "queue", "task": "task"}
#: Series drawn apart; the rest are summed as "other".
MAX_SERIES = 5


@dataclass(frozen=True, slots=True)
class Window:
    """The bins of a range: `starts[i]` opens bin i, each `step` long, the last holding now."""

    name: str
    starts: list[datetime]
    step: timedelta

    @property
    def since(self) -> datetime:
        return self.starts[0]

    def index(self, at: datetime) -> int | None:
        i = int((at - self.starts[0]) / self.step)
        return i if 0 <= i < len(self.starts) else None

    def label(self, i: int) -> str:
        start = self.starts[i]
        fmt = "%a %H:%M" if self.step >= timedelta(hours=1) else "%H:%M"
        if self.step == timedelta(minutes=1):
            return f"{start:{fmt}} UTC"
        return f"{start:{fmt}}\u2013{start + self.step:%H:%M} UTC"

    @property
    def per(self) -> str:
        """The bin as a unit: "min", "15 min", "2 h"."""
        minutes = int(self.step.total_seconds() // 60)
        return "min" if minutes == 1 else f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"


def window(name: str, now: datetime) -> Window:
    """The bins of range `name` (a key of RANGES) ending with the bin that holds `now`."""
    _, span, step = RANGES[name]
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    last = epoch + ((now - epoch) // step) * step
    count = int(span / step)
    return Window(name=name, starts=[last - step * (count - 1 - i) for i in range(count)], step=step)


@dataclass(frozen=True, slots=True)
class Rect:
    """One bar segment."""

    x: float
    y: float
    w: float
    h: float
    series: int


@dataclass(frozen=True, slots=True)
class Hit:
    """A bin's hover/focus area and the readout it shows."""

    x: float
    w: float
    readout: str


@dataclass(frozen=True, slots=True)
class Chart:
    """What a template needs to draw one chart."""

    id: str
    title: str
    unit: str
    summary: str
    rects: list[Rect] = field(default_factory=list)
    #: (points attribute, series index, name) of each line.
    lines: list[tuple[str, int, str]] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    yticks: list[tuple[float, str]] = field(default_factory=list)
    xticks: list[tuple[float, str]] = field(default_factory=list)
    legend: list[tuple[int, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM


def _nice(peak: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above `peak` (at least 1)."""
    if peak <= 1:
        return 1
    scale = 10 ** (len(str(int(peak))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if m * scale >= peak:
            return m * scale
    return 10 * scale


def _count_label(v: float) -> str:
    return f"{v / 1000:g}k" if v >= 10_000 else f"{v:g}"


def seconds_label(v: float | None) -> str:
    """`120 ms`, `2.5 s`, `5 min`, or `—`."""
    if v is None:
        return "—"
    if v < 1:
        return f"{v * 1000:g} ms"
    return f"{v:g} s" if v < 60 else f"{v / 60:g} min"


def _frame(w: Window) -> tuple[float, list[tuple[float, str]]]:
    """The width of a bin and about five x-axis labels."""
    slot = (WIDTH - LEFT - RIGHT) / len(w.starts)
    step = max(1, len(w.starts) // 5)
    fmt = "%a %H:%M" if w.step >= timedelta(hours=1) else "%H:%M"
    ticks = [(round(LEFT + i * slot, 1), f"{w.starts[i]:{fmt}}") for i in range(0, len(w.starts), step)]
    return slot, ticks


def _stacked(
    id: str, title: str, unit: str, w: Window, names: list[str], values: list[list[int]],
    summary: str, colours: dict[str, int], fmt: Callable[[float], str] = _count_label,
) -> Chart:
    """Bars stacked per bin; `values[s][i]` is series s in bin i, drawn in `colours[name]`."""
    colour = [colours.get(n, s % MAX_SERIES) for s, n in enumerate(names)]
    slot, xticks = _frame(w)
    totals = [sum(col) for col in zip(*values, strict=True)] if values else [0] * len(w.starts)
    top = _nice(max(totals, default=0))
    scale = (HEIGHT - TOP - BOTTOM) / top
    base = HEIGHT - BOTTOM
    rects, hits = [], []
    for i in range(len(w.starts)):
        y: float = base
        for s, series in enumerate(values):
            v = series[i]
            if v:
                h = v * scale
                y -= h
                rects.append(Rect(round(LEFT + i * slot + 0.5, 2), round(y, 2), round(max(slot - 1, 1), 2), round(h, 2), colour[s]))
        parts = [f"{names[s]} {fmt(values[s][i])}" for s in range(len(values)) if values[s][i]]
        detail = f" ({', '.join(parts)})" if len(values) > 1 and parts else ""
        hits.append(Hit(round(LEFT + i * slot, 2), round(slot, 2), f"{w.label(i)}: {fmt(totals[i])} {unit}{detail}"))
    # A middle line only where it falls on a whole count.
    yticks = [(round(base - f * (HEIGHT - TOP - BOTTOM), 1), fmt(top * f)) for f in (0, 0.5, 1)
              if f != 0.5 or float(top / 2).is_integer()]
    return Chart(id=id, title=title, unit=unit, summary=summary, rects=rects, hits=hits,
                 yticks=yticks, xticks=xticks, legend=list(zip(colour, names, strict=True)) if len(names) > 1 else [])


def palette(keys: Sequence[str]) -> dict[str, int]:
    """A colour per key, the same in every chart of a page: keys by name, `MAX_SERIES`
    colours in turn, and one more for "other"."""
    ordered = sorted(set(keys))
    return {k: i % MAX_SERIES for i, k in enumerate(ordered)} | {"other": MAX_SERIES}


def _top(keys_totals: dict[str, int]) -> list[str]:
    ranked = sorted(keys_totals, key=lambda k: (-keys_totals[k], k))
    return ranked[:MAX_SERIES]


def _series(w: Window, points: Sequence[tuple[datetime, str, int]], peak: bool = False) -> tuple[list[str], list[list[int]]]:
    """Per-key values per bin (summed, or the bin's highest when `peak`), the largest
    `MAX_SERIES` keys apart and the rest as "other"."""
    per: dict[str, list[int]] = {}
    for at, key, v in points:
        i = w.index(at)
        if i is None:
            continue
        row = per.setdefault(key, [0] * len(w.starts))
        row[i] = max(row[i], v) if peak else row[i] + v
    top = _top({k: sum(v) for k, v in per.items()})
    names = top + (["other"] if len(per) > len(top) else [])
    values = [per[k] for k in top]
    if len(per) > len(top):
        rest = [per[k] for k in per if k not in top]
        values.append([sum(col) for col in zip(*rest, strict=True)])
    return names, values


def series_key(row: StatsRow, by: str) -> str:
    """The series a stats row belongs to: its queue, or its task."""
    return row.queue if by == "queue" else (row.task or "(not recorded)")


def outcome_chart(kind: str, w: Window, rows: list[StatsRow], by: str, colours: dict[str, int] | None = None) -> Chart:
    """Jobs completed (`kind` "completed") or ended failed per bin, stacked by queue or task."""
    points = [(r.minute, series_key(r, by), r.completed if kind == "completed" else r.failed) for r in rows]
    names, values = _series(w, [p for p in points if p[2]])
    total = sum(map(sum, values))
    peak = max((sum(col) for col in zip(*values, strict=True)), default=0) if values else 0
    title = "Throughput" if kind == "completed" else "Failures"
    what = "completed" if kind == "completed" else "ended failed"
    unit = f"jobs {what} / {w.per}"
    return _stacked(
        "throughput" if kind == "completed" else "failures", title, unit, w, names or ["all"],
        values or [[0] * len(w.starts)], f"{total} {what} in {RANGES[w.name][0]} · peak {peak} / {w.per}",
        colours or palette([series_key(r, by) for r in rows]),
    )


def depth_chart(w: Window, rows: list[DepthRow], colours: dict[str, int] | None = None) -> Chart:
    """Waiting jobs per bin (each bin's highest sample), stacked by queue."""
    names, values = _series(w, [(r.minute, r.queue, r.depth) for r in rows], peak=True)
    latest_minute = max((r.minute for r in rows), default=None)
    latest = sum(r.depth for r in rows if r.minute == latest_minute)
    peak = max((sum(col) for col in zip(*values, strict=True)), default=0) if values else 0
    return _stacked("depth", "Queue depth", "jobs waiting", w, names or ["all"], values or [[0] * len(w.starts)],
                    f"{latest} waiting at the last sample · peak {peak}", colours or palette([r.queue for r in rows]))


def latency_chart(w: Window, rows: list[StatsRow]) -> Chart:
    """p50 and p95 of the wait from run time to start per bin, as two lines (log scale)."""
    cells = len(LATENCY_BOUNDS) + 1
    bins = [[0] * cells for _ in w.starts]
    for r in rows:
        i = w.index(r.minute)
        if i is not None and r.latency:
            bins[i] = [a + b for a, b in zip(bins[i], r.latency, strict=True)]
    slot, xticks = _frame(w)
    base, span = HEIGHT - BOTTOM, HEIGHT - TOP - BOTTOM
    # Log scale over the cells' bounds: cell k sits at height k / (cells - 1).
    def y_of(v: float) -> float:
        k = LATENCY_BOUNDS.index(v) + 1 if v in LATENCY_BOUNDS else 0
        return round(base - k / len(LATENCY_BOUNDS) * span, 2)
    lines, hits = [], []
    for s, q in enumerate((0.5, 0.95)):
        pts = []
        for i, h in enumerate(bins):
            v = latency_quantile(h, q)
            if v is not None:
                pts.append(f"{round(LEFT + (i + 0.5) * slot, 2)},{y_of(v)}")
        lines.append((" ".join(pts), s, f"p{int(q * 100)}"))
    for i, h in enumerate(bins):
        n = sum(h)
        text = (f"{w.label(i)}: p50 ≤ {seconds_label(latency_quantile(h, 0.5))}, "
                f"p95 ≤ {seconds_label(latency_quantile(h, 0.95))} ({n} started)") if n else f"{w.label(i)}: no job started"
        hits.append(Hit(round(LEFT + i * slot, 2), round(slot, 2), text))
    everything = [sum(col) for col in zip(*bins, strict=True)]
    marks = (0, 2, 5, 8, 11)
    yticks = [(round(base - m / len(LATENCY_BOUNDS) * span, 1), seconds_label(LATENCY_BOUNDS[m - 1]) if m else "0")
              for m in marks]
    summary = (f"p50 ≤ {seconds_label(latency_quantile(everything, 0.5))} · "
               f"p95 ≤ {seconds_label(latency_quantile(everything, 0.95))} over {sum(everything)} starts")
    return Chart(id="latency", title="Latency (enqueue → start)", unit="seconds waited", summary=summary,
                 lines=lines, hits=hits, yticks=yticks, xticks=xticks, legend=[(0, "p50"), (1, "p95")])
