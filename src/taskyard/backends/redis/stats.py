"""The fields of a Redis statistics minute hash (see `keys`): outcome counts per queue and
task, latency histogram cells and depth samples. Names never hold a space, so a space
separates the queue from the task."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from taskyard.core.queue import DepthRow, StatsRow, latency_histogram

__all__ = ("depths_of", "fields_of", "rows_of")


def _key(row: StatsRow) -> str:
    return f"{row.queue} {row.task}" if row.task else row.queue


def fields_of(row: StatsRow) -> Iterator[tuple[str, int]]:
    """(field, increment) pairs of one row; a row of zeros still marks its minute."""
    key = _key(row)
    yield f"c:{key}", row.completed
    if row.failed:
        yield f"f:{key}", row.failed
    for i, n in enumerate(row.latency):
        if n:
            yield f"l{i}:{key}", n


def rows_of(minute: datetime, h: dict[str, str]) -> list[StatsRow]:
    """The outcome rows of one minute's hash (depth fields skipped)."""
    cells: dict[tuple[str, str], list[int]] = {}
    latency: dict[tuple[str, str], dict[int, int]] = {}
    for field, value in h.items():
        kind, _, rest = field.partition(":")
        queue, _, task = rest.partition(" ")
        if kind == "d":
            continue
        if kind.startswith("l"):
            latency.setdefault((queue, task), {})[int(kind[1:])] = int(value)
            cells.setdefault((queue, task), [0, 0])
        else:
            cells.setdefault((queue, task), [0, 0])[0 if kind == "c" else 1] += int(value)
    return [
        StatsRow(minute=minute, queue=q, task=t, completed=c, failed=f,
                 latency=latency_histogram(latency.get((q, t), {})))
        for (q, t), (c, f) in cells.items()
    ]


def depths_of(minute: datetime, h: dict[str, str]) -> list[DepthRow]:
    """The depth samples of one minute's hash."""
    return [
        DepthRow(minute=minute, queue=field[2:], depth=int(value))
        for field, value in h.items()
        if field.startswith("d:")
    ]
