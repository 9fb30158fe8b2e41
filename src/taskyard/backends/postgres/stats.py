"""`StatsOps`: per-minute statistics in PostgreSQL: outcomes per (minute, queue, task),
latency histograms one row per cell, sampled queue depths; each kept `STATS_RETENTION`."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from taskyard.core.queue import STATS_RETENTION, DepthRow, StatsRow, latency_histogram

__all__ = ("StatsOps",)


class StatsOps:
    """The statistics operations of the protocol."""

    schema: str

    def _conn(
        self, what: str
    ) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        raise NotImplementedError

    async def stats_record(self, *, rows: Sequence[StatsRow]) -> None:
        # One row per key: ON CONFLICT may not touch a row twice in one statement.
        sums: dict[tuple[datetime, str, str], list[int]] = {}
        cells: dict[tuple[datetime, str, str, int], int] = {}
        for r in rows:
            cell = sums.setdefault((r.minute, r.queue, r.task), [0, 0])
            cell[0] += r.completed
            cell[1] += r.failed
            for i, n in enumerate(r.latency):
                if n:
                    cells[(r.minute, r.queue, r.task, i)] = cells.get((r.minute, r.queue, r.task, i), 0) + n
        if not sums:
            return
        s = self.schema
        oldest = max(k[0] for k in sums) - STATS_RETENTION
        async with self._conn("stats_record") as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO {s}.stats AS t (minute, queue, task, completed, failed) "
                "SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::bigint[], %s::bigint[]) "
                "ON CONFLICT (minute, queue, task) DO UPDATE SET completed = t.completed + excluded.completed, "
                "failed = t.failed + excluded.failed",
                ([k[0] for k in sums], [k[1] for k in sums], [k[2] for k in sums],
                 [v[0] for v in sums.values()], [v[1] for v in sums.values()]),
            )
            if cells:
                await conn.execute(
                    f"INSERT INTO {s}.stats_latency AS t (minute, queue, task, cell, count) "
                    "SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::smallint[], %s::bigint[]) "
                    "ON CONFLICT (minute, queue, task, cell) DO UPDATE SET count = t.count + excluded.count",
                    ([k[0] for k in cells], [k[1] for k in cells], [k[2] for k in cells],
                     [k[3] for k in cells], list(cells.values())),
                )
            # Relative to the newest minute written, as on the other backends: a clock that
            # disagrees with the database's (or a replayed batch) must not erase fresh rows.
            await conn.execute(f"DELETE FROM {s}.stats WHERE minute < %s", (oldest,))
            await conn.execute(f"DELETE FROM {s}.stats_latency WHERE minute < %s", (oldest,))

    async def stats_read(self, *, since: datetime, bin_minutes: int = 1) -> list[StatsRow]:
        s = self.schema
        size = max(1, bin_minutes) * 60
        bin_of = "to_timestamp(floor(extract(epoch FROM minute) / %(size)s) * %(size)s)"
        args = {"size": size, "since": since}
        async with self._conn("stats_read") as conn:
            cur = await conn.execute(
                f"SELECT {bin_of} AS bin, queue, task, cell, sum(count)::bigint FROM {s}.stats_latency "
                "WHERE minute >= %(since)s GROUP BY bin, queue, task, cell", args,
            )
            cells: dict[tuple[datetime, str, str], dict[int, int]] = {}
            for m, q, t, i, n in await cur.fetchall():
                cells.setdefault((m, q, t), {})[i] = n
            cur = await conn.execute(
                f"SELECT {bin_of} AS bin, queue, task, sum(completed)::bigint, sum(failed)::bigint FROM {s}.stats "
                "WHERE minute >= %(since)s GROUP BY bin, queue, task ORDER BY bin, queue, task", args,
            )
            rows = await cur.fetchall()
        return [
            StatsRow(minute=m.astimezone(UTC), queue=q, task=t, completed=c, failed=f,
                     latency=latency_histogram(cells.get((m, q, t), {})))
            for m, q, t, c, f in rows
        ]

    async def stats_record_depth(self, *, rows: Sequence[DepthRow]) -> None:
        last = {(r.minute, r.queue): r.depth for r in rows}
        if not last:
            return
        s = self.schema
        async with self._conn("stats_record_depth") as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO {s}.stats_depth (minute, queue, depth) "
                "SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::bigint[]) "
                "ON CONFLICT (minute, queue) DO UPDATE SET depth = excluded.depth",
                ([k[0] for k in last], [k[1] for k in last], list(last.values())),
            )
            await conn.execute(
                f"DELETE FROM {s}.stats_depth WHERE minute < %s", (max(k[0] for k in last) - STATS_RETENTION,)
            )

    async def stats_read_depth(self, *, since: datetime) -> list[DepthRow]:
        async with self._conn("stats_read_depth") as conn:
            cur = await conn.execute(
                f"SELECT minute, queue, depth FROM {self.schema}.stats_depth WHERE minute >= %s "
                "ORDER BY minute, queue",
                (since,),
            )
            rows = await cur.fetchall()
        return [DepthRow(minute=m.astimezone(UTC), queue=q, depth=d) for m, q, d in rows]
