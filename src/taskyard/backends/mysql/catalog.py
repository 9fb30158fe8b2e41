"""Everything that is not a job: queue settings and counts, statistics, schedules, the leader
lease and the worker registry. Each function runs on a cursor in its caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from asyncmy.cursors import Cursor

from taskyard.backends.protocol import UNSET
from taskyard.core.cluster import LeaderInfo, WorkerInfo
from taskyard.core.coverage import TaskCounts
from taskyard.core.job import JobStatus
from taskyard.core.queue import (
    STATS_RETENTION,
    DepthRow,
    QueueCounts,
    QueueSettings,
    RateLimit,
    StatsRow,
    latency_histogram,
)
from taskyard.core.schedule import Schedule

from .jobs import marks, server_now
from .rows import (
    SCHEDULE_COLUMNS,
    WORKER_COLUMNS,
    db_time,
    dumps,
    leader_from_row,
    loads,
    schedule_from_row,
    utc,
    worker_from_row,
)
from .schema import Tables

__all__ = (
    "leader_elect",
    "leader_get",
    "queue_counts",
    "queue_get",
    "queue_update",
    "queues_list",
    "schedule_record_fire",
    "schedule_upsert",
    "schedules_confirm",
    "schedules_expire_declared",
    "schedules_select",
    "stats_read",
    "stats_record",
    "task_counts",
    "worker_heartbeat",
)

_STATUS = {s.value: s for s in JobStatus}
_SETTINGS = "name, paused, concurrency, rate_limit, rate_period"


def _settings(row: Sequence[Any]) -> QueueSettings:
    name, paused, concurrency, rate_limit, rate_period = row
    return QueueSettings(
        name=name,
        paused=bool(paused),
        concurrency=concurrency,
        rate_limit=RateLimit(rate_limit, rate_period) if rate_limit is not None else None,
    )


# -- queues ----------------------------------------------------------------------------------
async def queue_counts(cur: Cursor, t: Tables) -> list[QueueCounts]:
    """Counts per status of every queue with jobs or settings."""
    await cur.execute(
        f"SELECT queue, status, COUNT(*) FROM {t.jobs} GROUP BY queue, status "
        f"UNION ALL SELECT name, NULL, 0 FROM {t.queues}"
    )
    counts: dict[str, dict[JobStatus, int]] = {}
    for queue, status, n in await cur.fetchall():
        per = counts.setdefault(queue, {})
        if status is not None:
            per[_STATUS[status]] = int(n)
    return [QueueCounts(queue=name, counts=counts[name]) for name in sorted(counts)]


async def task_counts(cur: Cursor, t: Tables, now: datetime | None) -> list[TaskCounts]:
    """Scheduled, pending and running jobs per (queue, task), with the earliest due run_at."""
    at = db_time(await server_now(cur, now))
    await cur.execute(
        "SELECT queue, task, SUM(status = 'pending'), SUM(status = 'scheduled'), "
        "SUM(status = 'running'), "
        "MIN(CASE WHEN status = 'pending' OR (status = 'scheduled' AND run_at <= %s) THEN run_at END) "
        f"FROM {t.jobs} WHERE status IN ('pending', 'scheduled', 'running') GROUP BY queue, task",
        (at,),
    )
    cells = [
        TaskCounts(
            queue=q, task=k, pending=int(p), scheduled=int(s), running=int(r), waiting_since=utc(w)
        )
        for q, k, p, s, r, w in await cur.fetchall()
    ]
    return sorted(cells, key=lambda c: (c.queue, c.task))


async def queue_get(cur: Cursor, t: Tables, queue: str) -> QueueSettings:
    """The settings of `queue` (defaults when never set)."""
    await cur.execute(f"SELECT {_SETTINGS} FROM {t.queues} WHERE name = %s", (queue,))
    row = await cur.fetchone()
    return _settings(row) if row else QueueSettings(name=queue)


async def queues_list(cur: Cursor, t: Tables) -> list[QueueSettings]:
    """Settings of every queue with jobs or settings, by name."""
    await cur.execute(
        f"SELECT n.name, q.paused, q.concurrency, q.rate_limit, q.rate_period FROM "
        f"(SELECT name FROM {t.queues} UNION SELECT DISTINCT queue FROM {t.jobs}) n "
        f"LEFT JOIN {t.queues} q ON q.name = n.name ORDER BY n.name"
    )
    return [
        _settings(row) if row[1] is not None else QueueSettings(name=row[0])
        for row in await cur.fetchall()
    ]


async def queue_update(
    cur: Cursor,
    t: Tables,
    queue: str,
    paused: Any,
    concurrency: Any,
    rate_limit: Any,
) -> QueueSettings:
    """Change some settings (UNSET leaves one as it is); returns them all."""
    if concurrency is not UNSET:
        QueueSettings(name=queue, concurrency=concurrency)  # validates before anything is stored
    sets = ["name = name"]
    if paused is not UNSET:
        sets.append("paused = VALUES(paused)")
    if concurrency is not UNSET:
        sets.append("concurrency = VALUES(concurrency)")
    if rate_limit is not UNSET:
        sets += ["rate_limit = VALUES(rate_limit)", "rate_period = VALUES(rate_period)"]
    limit = None if rate_limit is UNSET or rate_limit is None else rate_limit
    await cur.execute(
        f"INSERT INTO {t.queues} ({_SETTINGS}) VALUES (%s, %s, %s, %s, %s) "
        f"ON DUPLICATE KEY UPDATE {', '.join(sets)}",
        (
            queue,
            False if paused is UNSET else bool(paused),
            None if concurrency is UNSET else concurrency,
            limit.limit if limit else None,
            limit.period if limit else None,
        ),
    )
    return await queue_get(cur, t, queue)


# -- statistics ------------------------------------------------------------------------------
async def stats_record(cur: Cursor, t: Tables, rows: Sequence[StatsRow]) -> None:
    """Add outcome counts per (minute, queue, task) and latency cells; rows past
    `STATS_RETENTION` before the newest minute written are discarded."""
    if not rows:
        return
    await cur.executemany(
        f"INSERT INTO {t.stats} (minute, queue, task, completed, failed) VALUES (%s, %s, %s, %s, %s) "
        "ON DUPLICATE KEY UPDATE completed = completed + VALUES(completed), "
        "failed = failed + VALUES(failed)",
        [(db_time(r.minute), r.queue, r.task, r.completed, r.failed) for r in rows],
    )
    cells = [(db_time(r.minute), r.queue, r.task, i, n) for r in rows for i, n in enumerate(r.latency) if n]
    if cells:
        await cur.executemany(
            f"INSERT INTO {t.stats_latency} (minute, queue, task, cell, count) "
            "VALUES (%s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE count = count + VALUES(count)",
            cells,
        )
    oldest = db_time(max(r.minute for r in rows) - STATS_RETENTION)
    await cur.execute(f"DELETE FROM {t.stats} WHERE minute < %s", (oldest,))
    await cur.execute(f"DELETE FROM {t.stats_latency} WHERE minute < %s", (oldest,))


def _bin(size: int) -> str:
    # Bins aligned to the Unix epoch, in plain DATETIME arithmetic (the stored minutes are UTC;
    # UNIX_TIMESTAMP would read them in the session's time zone).
    epoch = "CAST('1970-01-01 00:00:00' AS DATETIME(6))"
    return (f"DATE_ADD({epoch}, INTERVAL FLOOR(TIMESTAMPDIFF(SECOND, {epoch}, minute) / {size}) "
            f"* {size} SECOND)")


async def stats_read(cur: Cursor, t: Tables, since: datetime, bin_minutes: int = 1) -> list[StatsRow]:
    """Rows from `since` on, summed into bins of `bin_minutes` (aligned to the Unix epoch),
    sorted by minute, queue, task."""
    size = max(1, int(bin_minutes)) * 60
    await cur.execute(
        f"SELECT {_bin(size)} AS bin, queue, task, cell, SUM(count) FROM {t.stats_latency} "
        "WHERE minute >= %s GROUP BY bin, queue, task, cell",
        (db_time(since),),
    )
    cells: dict[tuple[Any, str, str], dict[int, int]] = {}
    for minute, queue, task, cell, count in await cur.fetchall():
        cells.setdefault((minute, queue, task), {})[int(cell)] = int(count)
    await cur.execute(
        f"SELECT {_bin(size)} AS bin, queue, task, SUM(completed), SUM(failed) FROM {t.stats} "
        "WHERE minute >= %s GROUP BY bin, queue, task ORDER BY bin, queue, task",
        (db_time(since),),
    )
    return [
        StatsRow(minute=utc(m), queue=q, task=k, completed=int(c), failed=int(f),  # type: ignore[arg-type]
                 latency=latency_histogram(cells.get((m, q, k), {})))
        for m, q, k, c, f in await cur.fetchall()
    ]


async def depth_record(cur: Cursor, t: Tables, rows: Sequence[DepthRow]) -> None:
    """Store depth samples (the last of a minute wins); samples past the retention go."""
    if not rows:
        return
    await cur.executemany(
        f"INSERT INTO {t.stats_depth} (minute, queue, depth) VALUES (%s, %s, %s) "
        "ON DUPLICATE KEY UPDATE depth = VALUES(depth)",
        [(db_time(r.minute), r.queue, r.depth) for r in rows],
    )
    oldest = db_time(max(r.minute for r in rows) - STATS_RETENTION)
    await cur.execute(f"DELETE FROM {t.stats_depth} WHERE minute < %s", (oldest,))


async def depth_read(cur: Cursor, t: Tables, since: datetime) -> list[DepthRow]:
    """Depth samples from `since` on, sorted by minute then queue."""
    await cur.execute(
        f"SELECT minute, queue, depth FROM {t.stats_depth} WHERE minute >= %s ORDER BY minute, queue",
        (db_time(since),),
    )
    return [DepthRow(minute=utc(m), queue=q, depth=int(d)) for m, q, d in await cur.fetchall()]  # type: ignore[arg-type]


# -- schedules -------------------------------------------------------------------------------
async def schedule_upsert(cur: Cursor, t: Tables, schedules: Sequence[Schedule]) -> None:
    """Insert or replace schedules by name."""
    if not schedules:
        return
    await cur.execute(
        f"INSERT INTO {t.schedules} (name, owner, enabled, next_fire_at, last_fire_at, data) "
        f"VALUES {', '.join(['(%s, %s, %s, %s, %s, %s)'] * len(schedules))} "
        "ON DUPLICATE KEY UPDATE owner = VALUES(owner), enabled = VALUES(enabled), "
        "next_fire_at = VALUES(next_fire_at), last_fire_at = VALUES(last_fire_at), "
        "data = VALUES(data)",
        [
            v
            for s in schedules
            for v in (
                s.name, s.owner, s.enabled, db_time(s.next_fire_at), db_time(s.last_fire_at),
                dumps(s.to_json()),
            )
        ],
    )


async def schedules_select(cur: Cursor, t: Tables, where: str, args: Sequence[Any]) -> list[Schedule]:
    """The schedules `where` selects."""
    await cur.execute(f"SELECT {SCHEDULE_COLUMNS} FROM {t.schedules} WHERE {where}", args)
    return [schedule_from_row(r) for r in await cur.fetchall()]


async def _stamp(cur: Cursor, t: Tables, names: Sequence[str], at: datetime) -> int:
    """`confirmed_at = at` in the JSON document of the code schedules among `names`."""
    if not names:
        return 0
    await cur.execute(
        f"SELECT name, data FROM {t.schedules} WHERE name IN ({marks(len(names))}) FOR UPDATE",
        list(names),
    )
    stamped = 0
    for name, data in await cur.fetchall():
        doc = loads(data)
        if not isinstance(doc, dict) or doc.get("source") != "code":
            continue
        doc["confirmed_at"] = at.isoformat()
        await cur.execute(f"UPDATE {t.schedules} SET data = %s WHERE name = %s", (dumps(doc), name))
        stamped += 1
    return stamped


async def schedules_confirm(cur: Cursor, t: Tables, names: Sequence[str], now: datetime | None) -> int:
    """Set `confirmed_at` on the code schedules among `names`."""
    return await _stamp(cur, t, list(dict.fromkeys(names)), await server_now(cur, now))


async def schedules_expire_declared(
    cur: Cursor, t: Tables, grace: float, now: datetime | None
) -> list[str]:
    """Delete code schedules unconfirmed since `now - grace`; stamp those never confirmed."""
    at = await server_now(cur, now)
    cutoff = at - timedelta(seconds=grace)
    await cur.execute(f"SELECT name, data FROM {t.schedules} FOR UPDATE")
    unconfirmed: list[str] = []
    expired: list[str] = []
    for name, data in await cur.fetchall():
        doc = loads(data)
        if not isinstance(doc, dict) or doc.get("source") != "code":
            continue
        confirmed = doc.get("confirmed_at")
        if not confirmed:
            unconfirmed.append(name)
        elif datetime.fromisoformat(confirmed) < cutoff:
            expired.append(name)
    await _stamp(cur, t, unconfirmed, at)
    if expired:
        await cur.execute(
            f"DELETE FROM {t.schedules} WHERE name IN ({marks(len(expired))})", expired
        )
    return sorted(expired)


async def schedule_record_fire(
    cur: Cursor, t: Tables, name: str, fire_time: datetime, next_fire_at: datetime | None
) -> bool:
    """Compare-and-set of `last_fire_at`."""
    changed = await cur.execute(
        f"UPDATE {t.schedules} SET last_fire_at = %s, next_fire_at = %s "
        "WHERE name = %s AND (last_fire_at IS NULL OR last_fire_at < %s)",
        (db_time(fire_time), db_time(next_fire_at), name, db_time(fire_time)),
    )
    return int(changed) > 0


# -- leadership ------------------------------------------------------------------------------
async def leader_elect(
    cur: Cursor, t: Tables, name: str, holder: str, ttl: float, now: datetime | None
) -> bool:
    """Take the lease if free or expired, or renew it for its holder."""
    at = await server_now(cur, now)
    expires = db_time(at + timedelta(seconds=ttl))
    await cur.execute(
        f"SELECT holder, elected_at, expires_at FROM {t.leaders} WHERE name = %s FOR UPDATE", (name,)
    )
    row: Any = await cur.fetchone()
    if row is None:
        # A concurrent first election fails this INSERT (duplicate key): that caller lost.
        await cur.execute(
            f"INSERT INTO {t.leaders} (name, holder, elected_at, expires_at) "
            "VALUES (%s, %s, %s, %s)",
            (name, holder, db_time(at), expires),
        )
        return True
    current, elected_at, expires_at = row
    live = expires_at > db_time(at)
    if live and current != holder:
        return False
    await cur.execute(
        f"UPDATE {t.leaders} SET holder = %s, elected_at = %s, expires_at = %s WHERE name = %s",
        (holder, elected_at if live else db_time(at), expires, name),
    )
    return True


async def leader_get(cur: Cursor, t: Tables, name: str, now: datetime | None) -> LeaderInfo | None:
    """The live holder of the lease, or None."""
    at = await server_now(cur, now)
    await cur.execute(
        f"SELECT name, holder, elected_at, expires_at FROM {t.leaders} "
        "WHERE name = %s AND expires_at > %s",
        (name, db_time(at)),
    )
    row = await cur.fetchone()
    return leader_from_row(row) if row else None


# -- workers ---------------------------------------------------------------------------------
async def worker_heartbeat(cur: Cursor, t: Tables, info: WorkerInfo) -> None:
    """Register or refresh a worker."""
    await cur.execute(
        f"INSERT INTO {t.workers} ({WORKER_COLUMNS}) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
        "host = VALUES(host), pid = VALUES(pid), queues = VALUES(queues), "
        "concurrency = VALUES(concurrency), started_at = VALUES(started_at), "
        "last_heartbeat = VALUES(last_heartbeat), current_jobs = VALUES(current_jobs), "
        "tasks = VALUES(tasks), lost_threads = VALUES(lost_threads)",
        (
            info.id, info.host, info.pid, dumps(list(info.queues)), info.concurrency,
            db_time(info.started_at), db_time(info.last_heartbeat),
            dumps(list(info.current_jobs)), dumps(list(info.tasks)), info.lost_threads,
        ),
    )


async def workers_list(cur: Cursor, t: Tables) -> list[WorkerInfo]:
    """Registered workers by id."""
    await cur.execute(f"SELECT {WORKER_COLUMNS} FROM {t.workers} ORDER BY id")
    return [worker_from_row(r) for r in await cur.fetchall()]
