"""Everything that is not a job: queue settings and counts, statistics, schedules, the leader
lease and the worker registry. Mixed into `PostgresBackend`, whose `_conn()` it uses.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from taskyard.backends.postgres.rows import (
    SCHEDULE_COLUMNS,
    WORKER_COLUMNS,
    leader_from_row,
    schedule_from_row,
    worker_from_row,
)
from taskyard.backends.protocol import UNSET
from taskyard.core.cluster import LeaderInfo, WorkerInfo
from taskyard.core.coverage import TaskCounts
from taskyard.core.job import JobStatus
from taskyard.core.queue import QueueCounts, QueueSettings, RateLimit
from taskyard.core.schedule import Schedule

__all__ = ("NOW", "CatalogOps")

#: The time to act at: the caller's `now`, else the database's clock (one clock for every machine).
NOW = "coalesce(%(now)s::timestamptz, now())"

_STATUS = {s.value: s for s in JobStatus}

# Declarations keep their bookkeeping in the schedule's JSON document (no schema change):
# `confirmed_at` is an ISO 8601 string in UTC there, as `Schedule.to_json` writes it.
_CODE = "data->>'source' = 'code'"
_ISO = "to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"


def _settings(row: Sequence[Any]) -> QueueSettings:
    name, paused, concurrency, rate_limit, rate_period = row
    return QueueSettings(
        name=name,
        paused=paused,
        concurrency=concurrency,
        rate_limit=RateLimit(rate_limit, rate_period) if rate_limit is not None else None,
    )


def _schedule_params(schedule: Schedule) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "owner": schedule.owner,
        "enabled": schedule.enabled,
        "next": schedule.next_fire_at,
        "last": schedule.last_fire_at,
        "data": json.dumps(schedule.to_json()),
    }


class CatalogOps:
    """Queue, schedule, leadership and worker operations of the protocol (statistics: `StatsOps`)."""

    schema: str
    channel: str

    def _conn(
        self, what: str
    ) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        raise NotImplementedError

    # -- queues ------------------------------------------------------------------------------
    async def queue_counts(self) -> list[QueueCounts]:
        s = self.schema
        async with self._conn("queue_counts") as conn:
            cur = await conn.execute(
                f"SELECT queue, status, count(*) FROM {s}.jobs GROUP BY queue, status "
                f"UNION ALL SELECT name, NULL, 0 FROM {s}.queues"
            )
            rows = await cur.fetchall()
        counts: dict[str, dict[JobStatus, int]] = {}
        for queue, status, n in rows:
            per = counts.setdefault(queue, {})
            if status is not None:
                per[_STATUS[status]] = n
        return [QueueCounts(queue=name, counts=counts[name]) for name in sorted(counts)]

    async def task_counts(self, *, now: datetime | None = None) -> list[TaskCounts]:
        s = self.schema
        # Two reads whose predicates match the partial indexes jobs_ready and jobs_running.
        async with self._conn("task_counts") as conn:
            cur = await conn.execute(
                f"SELECT queue, task, count(*) FILTER (WHERE status = 'pending'), "
                "count(*) FILTER (WHERE status = 'scheduled'), 0, "
                "min(run_at) FILTER (WHERE status = 'pending' OR run_at <= coalesce(%s, now())) "
                f"FROM {s}.jobs WHERE status IN ('pending', 'scheduled') GROUP BY queue, task "
                f"UNION ALL SELECT queue, task, 0, 0, count(*), NULL FROM {s}.jobs "
                "WHERE status = 'running' GROUP BY queue, task",
                (now,),
            )
            rows = await cur.fetchall()
        cells: dict[tuple[str, str], TaskCounts] = {}
        for queue, task, pending, scheduled, running, since in rows:
            seen = cells.get((queue, task))
            if seen is not None:
                pending, scheduled, since = seen.pending, seen.scheduled, seen.waiting_since
            cells[(queue, task)] = TaskCounts(
                queue=queue, task=task, pending=pending, scheduled=scheduled,
                running=running or (seen.running if seen else 0), waiting_since=since,
            )
        return [cells[key] for key in sorted(cells)]

    async def queue_get(self, *, queue: str) -> QueueSettings:
        async with self._conn("queue_get") as conn:
            cur = await conn.execute(
                f"SELECT name, paused, concurrency, rate_limit, rate_period FROM {self.schema}.queues "
                "WHERE name = %s",
                (queue,),
            )
            row = await cur.fetchone()
        return _settings(row) if row else QueueSettings(name=queue)

    async def queues_list(self) -> list[QueueSettings]:
        s = self.schema
        async with self._conn("queues_list") as conn:
            cur = await conn.execute(
                f"SELECT n.name, q.paused, q.concurrency, q.rate_limit, q.rate_period FROM "
                f"(SELECT name FROM {s}.queues UNION SELECT DISTINCT queue FROM {s}.jobs) n "
                f"LEFT JOIN {s}.queues q ON q.name = n.name ORDER BY n.name"
            )
            rows = await cur.fetchall()
        return [
            _settings(row) if row[1] is not None else QueueSettings(name=row[0]) for row in rows
        ]

    async def queue_update(
        self,
        *,
        queue: str,
        paused: bool = UNSET,
        concurrency: int | None = UNSET,
        rate_limit: RateLimit | None = UNSET,
    ) -> QueueSettings:
        if concurrency is not UNSET:
            QueueSettings(
                name=queue, concurrency=concurrency
            )  # validates before anything is stored
        sets = ["name = excluded.name"]
        if paused is not UNSET:
            sets.append("paused = excluded.paused")
        if concurrency is not UNSET:
            sets.append("concurrency = excluded.concurrency")
        if rate_limit is not UNSET:
            sets += ["rate_limit = excluded.rate_limit", "rate_period = excluded.rate_period"]
        limit = None if rate_limit is UNSET or rate_limit is None else rate_limit
        async with self._conn("queue_update") as conn:
            cur = await conn.execute(
                f"INSERT INTO {self.schema}.queues AS q (name, paused, concurrency, rate_limit, rate_period) "
                f"VALUES (%(name)s, %(paused)s, %(conc)s, %(limit)s, %(period)s) "
                f"ON CONFLICT (name) DO UPDATE SET {', '.join(sets)} "
                "RETURNING name, paused, concurrency, rate_limit, rate_period",
                {
                    "name": queue,
                    "paused": False if paused is UNSET else bool(paused),
                    "conc": None if concurrency is UNSET else concurrency,
                    "limit": limit.limit if limit else None,
                    "period": limit.period if limit else None,
                },
            )
            row = await cur.fetchone()
            await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, queue))
        assert row is not None
        return _settings(row)

    # -- schedules ---------------------------------------------------------------------------
    def _upsert_schedule_sql(self) -> str:
        return (
            f"INSERT INTO {self.schema}.schedules (name, owner, enabled, next_fire_at, last_fire_at, data) "
            "VALUES (%(name)s, %(owner)s, %(enabled)s, %(next)s, %(last)s, %(data)s::jsonb) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, enabled = excluded.enabled, "
            "next_fire_at = excluded.next_fire_at, last_fire_at = excluded.last_fire_at, data = excluded.data"
        )

    async def schedule_upsert(self, *, schedule: Schedule) -> Schedule:
        async with self._conn("schedule_upsert") as conn:
            await conn.execute(self._upsert_schedule_sql(), _schedule_params(schedule))
        return schedule

    async def schedule_get(self, *, name: str) -> Schedule | None:
        async with self._conn("schedule_get") as conn:
            cur = await conn.execute(
                f"SELECT {SCHEDULE_COLUMNS} FROM {self.schema}.schedules WHERE name = %s", (name,)
            )
            row = await cur.fetchone()
        return schedule_from_row(row) if row else None

    async def schedules_list(self, *, owner: str | None = None) -> list[Schedule]:
        async with self._conn("schedules_list") as conn:
            cur = await conn.execute(
                f"SELECT {SCHEDULE_COLUMNS} FROM {self.schema}.schedules "
                "WHERE %(owner)s::text IS NULL OR owner = %(owner)s ORDER BY name",
                {"owner": owner},
            )
            rows = await cur.fetchall()
        return [schedule_from_row(r) for r in rows]

    async def schedules_get(self, *, names: Sequence[str]) -> list[Schedule]:
        async with self._conn("schedules_get") as conn:
            cur = await conn.execute(
                f"SELECT {SCHEDULE_COLUMNS} FROM {self.schema}.schedules "
                "WHERE name = ANY(%(names)s) ORDER BY name",
                {"names": list(names)},
            )
            rows = await cur.fetchall()
        return [schedule_from_row(r) for r in rows]

    async def schedules_confirm(self, *, names: Sequence[str], now: datetime | None = None) -> int:
        async with self._conn("schedules_confirm") as conn:
            cur = await conn.execute(
                f"UPDATE {self.schema}.schedules SET data = jsonb_set(data, '{{confirmed_at}}', "
                f"to_jsonb({_ISO.format(NOW)})) WHERE name = ANY(%(names)s) AND {_CODE}",
                {"names": list(names), "now": now},
            )
            return cur.rowcount

    async def schedules_expire_declared(self, *, grace: float, now: datetime | None = None) -> list[str]:
        s = self.schema
        async with self._conn("schedules_expire_declared") as conn:
            # Both statements read the same snapshot: a row stamped here is not deleted here.
            cur = await conn.execute(
                f"WITH n AS (SELECT {NOW} AS now), "
                f"stamp AS (UPDATE {s}.schedules SET data = jsonb_set(data, '{{confirmed_at}}', "
                f"to_jsonb({_ISO.format('n.now')})) FROM n "
                f"WHERE {_CODE} AND data->>'confirmed_at' IS NULL), "
                f"gone AS (DELETE FROM {s}.schedules USING n WHERE {_CODE} "
                "AND (data->>'confirmed_at')::timestamptz < n.now - make_interval(secs => %(grace)s) "
                "RETURNING name) "
                "SELECT name FROM gone ORDER BY name",
                {"now": now, "grace": grace},
            )
            return [row[0] for row in await cur.fetchall()]

    async def schedule_delete(self, *, name: str) -> bool:
        async with self._conn("schedule_delete") as conn:
            cur = await conn.execute(
                f"DELETE FROM {self.schema}.schedules WHERE name = %s", (name,)
            )
            return cur.rowcount > 0

    async def schedules_replace_owner(self, *, owner: str, schedules: Sequence[Schedule]) -> None:
        async with self._conn("schedules_replace_owner") as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {self.schema}.schedules WHERE owner = %s", (owner,))
            if schedules:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        self._upsert_schedule_sql(),
                        [_schedule_params(s) for s in schedules],
                    )

    async def schedules_delete_owner(self, *, owner: str) -> int:
        async with self._conn("schedules_delete_owner") as conn:
            cur = await conn.execute(
                f"DELETE FROM {self.schema}.schedules WHERE owner = %s", (owner,)
            )
            return cur.rowcount

    async def schedules_due(self, *, now: datetime | None = None) -> list[Schedule]:
        async with self._conn("schedules_due") as conn:
            cur = await conn.execute(
                f"SELECT {SCHEDULE_COLUMNS} FROM {self.schema}.schedules "
                f"WHERE enabled AND next_fire_at <= {NOW} ORDER BY next_fire_at, name",
                {"now": now},
            )
            rows = await cur.fetchall()
        return [schedule_from_row(r) for r in rows]

    async def schedule_record_fire(
        self, *, name: str, fire_time: datetime, next_fire_at: datetime | None
    ) -> bool:
        async with self._conn("schedule_record_fire") as conn:
            cur = await conn.execute(
                f"UPDATE {self.schema}.schedules SET last_fire_at = %(ft)s, next_fire_at = %(nf)s "
                "WHERE name = %(name)s AND (last_fire_at IS NULL OR last_fire_at < %(ft)s)",
                {"name": name, "ft": fire_time, "nf": next_fire_at},
            )
            return cur.rowcount > 0

    # -- leadership --------------------------------------------------------------------------
    async def leader_attempt_elect(
        self, *, name: str, holder: str, ttl: float, now: datetime | None = None
    ) -> bool:
        async with self._conn("leader_attempt_elect") as conn:
            cur = await conn.execute(
                f"WITH n AS (SELECT {NOW} AS now) "
                f"INSERT INTO {self.schema}.leaders AS l (name, holder, elected_at, expires_at) "
                "SELECT %(name)s, %(holder)s, n.now, n.now + make_interval(secs => %(ttl)s) FROM n "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "elected_at = CASE WHEN l.holder = excluded.holder AND l.expires_at > excluded.elected_at "
                "THEN l.elected_at ELSE excluded.elected_at END, expires_at = excluded.expires_at "
                "WHERE l.holder = excluded.holder AND l.expires_at > excluded.elected_at "
                "OR l.expires_at <= excluded.elected_at RETURNING holder",
                {"name": name, "holder": holder, "ttl": float(ttl), "now": now},
            )
            return await cur.fetchone() is not None

    async def leader_resign(self, *, name: str, holder: str) -> None:
        async with self._conn("leader_resign") as conn:
            await conn.execute(
                f"DELETE FROM {self.schema}.leaders WHERE name = %s AND holder = %s", (name, holder)
            )

    async def leader_get(self, *, name: str, now: datetime | None = None) -> LeaderInfo | None:
        async with self._conn("leader_get") as conn:
            cur = await conn.execute(
                f"SELECT name, holder, elected_at, expires_at FROM {self.schema}.leaders "
                f"WHERE name = %(name)s AND expires_at > {NOW}",
                {"name": name, "now": now},
            )
            row = await cur.fetchone()
        return leader_from_row(row) if row else None

    # -- workers -----------------------------------------------------------------------------
    async def worker_heartbeat(self, *, info: WorkerInfo) -> None:
        async with self._conn("worker_heartbeat") as conn:
            await conn.execute(
                f"INSERT INTO {self.schema}.workers ({WORKER_COLUMNS}) "
                "VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s::jsonb, %s::jsonb, %s) "
                "ON CONFLICT (id) DO UPDATE SET "
                "host = excluded.host, pid = excluded.pid, queues = excluded.queues, "
                "concurrency = excluded.concurrency, started_at = excluded.started_at, "
                "last_heartbeat = excluded.last_heartbeat, current_jobs = excluded.current_jobs, "
                "tasks = excluded.tasks, lost_threads = excluded.lost_threads",
                (
                    info.id,
                    info.host,
                    info.pid,
                    json.dumps(list(info.queues)),
                    info.concurrency,
                    info.started_at,
                    info.last_heartbeat,
                    json.dumps(list(info.current_jobs)),
                    json.dumps(list(info.tasks)),
                    info.lost_threads,
                ),
            )

    async def worker_remove(self, *, worker_id: str) -> None:
        async with self._conn("worker_remove") as conn:
            await conn.execute(f"DELETE FROM {self.schema}.workers WHERE id = %s", (worker_id,))

    async def workers_list(self) -> list[WorkerInfo]:
        async with self._conn("workers_list") as conn:
            cur = await conn.execute(
                f"SELECT {WORKER_COLUMNS} FROM {self.schema}.workers ORDER BY id"
            )
            rows = await cur.fetchall()
        return [worker_from_row(r) for r in rows]

    async def workers_prune(self, *, older_than: datetime) -> int:
        async with self._conn("workers_prune") as conn:
            cur = await conn.execute(
                f"DELETE FROM {self.schema}.workers WHERE last_heartbeat < %s", (older_than,)
            )
            return cur.rowcount
