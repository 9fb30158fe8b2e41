"""Schedules, the leader lease and the worker registry."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from taskyard.core.cluster import LeaderInfo, WorkerInfo
from taskyard.core.schedule import Schedule

from .rows import dumps, from_us, to_us

__all__ = (
    "leader_elect",
    "leader_get",
    "leader_resign",
    "schedule_delete",
    "schedule_get",
    "schedule_record_fire",
    "schedule_upsert",
    "schedules_confirm",
    "schedules_delete_owner",
    "schedules_due",
    "schedules_expire_declared",
    "schedules_get",
    "schedules_list",
    "schedules_replace_owner",
    "worker_heartbeat",
    "worker_remove",
    "workers_list",
    "workers_prune",
)

_SCHEDULE = "SELECT data, last_fire_at, next_fire_at FROM schedules"


def _us(when: datetime | None) -> int | None:
    return None if when is None else to_us(when)


def _schedule(row: tuple[Any, ...]) -> Schedule:
    # The fire columns are the truth: `schedule_record_fire` updates only them.
    data, last, next_ = row
    return Schedule.from_json(json.loads(data)).replace(
        last_fire_at=from_us(last), next_fire_at=from_us(next_)
    )


def schedule_upsert(conn: sqlite3.Connection, s: Schedule) -> Schedule:
    """Insert or replace by name."""
    conn.execute(
        "INSERT INTO schedules (name, owner, enabled, next_fire_at, last_fire_at, data) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
        "enabled = excluded.enabled, next_fire_at = excluded.next_fire_at, "
        "last_fire_at = excluded.last_fire_at, data = excluded.data",
        (
            s.name,
            s.owner,
            int(s.enabled),
            _us(s.next_fire_at),
            _us(s.last_fire_at),
            dumps(s.to_json()),
        ),
    )
    return s


def schedule_get(conn: sqlite3.Connection, name: str) -> Schedule | None:
    row = conn.execute(f"{_SCHEDULE} WHERE name = ?", (name,)).fetchone()
    return _schedule(row) if row else None


def schedules_list(conn: sqlite3.Connection, owner: str | None) -> list[Schedule]:
    if owner is None:
        rows = conn.execute(f"{_SCHEDULE} ORDER BY name")
    else:
        rows = conn.execute(f"{_SCHEDULE} WHERE owner = ? ORDER BY name", (owner,))
    return [_schedule(r) for r in rows]


def schedules_get(conn: sqlite3.Connection, names: Sequence[str]) -> list[Schedule]:
    rows = conn.execute(
        f"{_SCHEDULE} WHERE name IN (SELECT value FROM json_each(?)) ORDER BY name",
        (json.dumps(list(names)),),
    )
    return [_schedule(r) for r in rows]


# Declarations keep their bookkeeping in the JSON document (no schema change): `confirmed_at`
# is an ISO 8601 string there, patched in place by `json_set`.
_CODE = "json_extract(data, '$.source') = 'code'"


def schedules_confirm(conn: sqlite3.Connection, names: Sequence[str], now: datetime) -> int:
    """`confirmed_at = now` on the code schedules among `names`."""
    return conn.execute(
        "UPDATE schedules SET data = json_set(data, '$.confirmed_at', ?) "
        f"WHERE name IN (SELECT value FROM json_each(?)) AND {_CODE}",
        (now.isoformat(), json.dumps(list(names))),
    ).rowcount


def schedules_expire_declared(conn: sqlite3.Connection, grace: float, now: datetime) -> list[str]:
    """Delete code schedules unconfirmed since `now - grace`; stamp those never confirmed."""
    cutoff = now - timedelta(seconds=grace)
    rows = conn.execute(
        f"SELECT name, json_extract(data, '$.confirmed_at') FROM schedules WHERE {_CODE}"
    ).fetchall()
    unconfirmed = [name for name, at in rows if not at]
    expired = sorted(name for name, at in rows if at and datetime.fromisoformat(at) < cutoff)
    if unconfirmed:
        schedules_confirm(conn, unconfirmed, now)
    for name in expired:
        conn.execute("DELETE FROM schedules WHERE name = ?", (name,))
    return expired


def schedule_delete(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount > 0


def schedules_delete_owner(conn: sqlite3.Connection, owner: str) -> int:
    return conn.execute("DELETE FROM schedules WHERE owner = ?", (owner,)).rowcount


def schedules_replace_owner(
    conn: sqlite3.Connection, owner: str, schedules: Sequence[Schedule]
) -> None:
    schedules_delete_owner(conn, owner)
    for s in schedules:
        schedule_upsert(conn, s)


def schedules_due(conn: sqlite3.Connection, now: datetime) -> list[Schedule]:
    rows = conn.execute(
        f"{_SCHEDULE} WHERE enabled AND next_fire_at IS NOT NULL AND next_fire_at <= ? "
        "ORDER BY next_fire_at, name",
        (to_us(now),),
    )
    return [_schedule(r) for r in rows]


def schedule_record_fire(
    conn: sqlite3.Connection, name: str, fire_time: datetime, next_fire_at: datetime | None
) -> bool:
    """Compare-and-set on `last_fire_at`."""
    fire_us = to_us(fire_time)
    cur = conn.execute(
        "UPDATE schedules SET last_fire_at = ?, next_fire_at = ? "
        "WHERE name = ? AND (last_fire_at IS NULL OR last_fire_at < ?)",
        (fire_us, _us(next_fire_at), name, fire_us),
    )
    return cur.rowcount > 0


def leader_elect(
    conn: sqlite3.Connection, name: str, holder: str, ttl: float, now: datetime
) -> bool:
    """Acquire a free or expired lease, or renew our own."""
    now_us = to_us(now)
    expires = to_us(now + timedelta(seconds=ttl))
    row = conn.execute("SELECT holder, expires_at FROM leaders WHERE name = ?", (name,)).fetchone()
    if row is not None and row[1] > now_us:
        if row[0] != holder:
            return False
        conn.execute("UPDATE leaders SET expires_at = ? WHERE name = ?", (expires, name))
        return True
    conn.execute(
        "INSERT INTO leaders (name, holder, elected_at, expires_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
        "elected_at = excluded.elected_at, expires_at = excluded.expires_at",
        (name, holder, now_us, expires),
    )
    return True


def leader_resign(conn: sqlite3.Connection, name: str, holder: str) -> None:
    conn.execute("DELETE FROM leaders WHERE name = ? AND holder = ?", (name, holder))


def leader_get(conn: sqlite3.Connection, name: str, now: datetime) -> LeaderInfo | None:
    row = conn.execute(
        "SELECT holder, elected_at, expires_at FROM leaders WHERE name = ? AND expires_at > ?",
        (name, to_us(now)),
    ).fetchone()
    if row is None:
        return None
    elected, expires = from_us(row[1]), from_us(row[2])
    assert elected is not None and expires is not None
    return LeaderInfo(name=name, holder=row[0], elected_at=elected, expires_at=expires)


def worker_heartbeat(conn: sqlite3.Connection, info: WorkerInfo) -> None:
    data = {
        "host": info.host,
        "pid": info.pid,
        "queues": list(info.queues),
        "concurrency": info.concurrency,
        "started_at": to_us(info.started_at),
        "current_jobs": list(info.current_jobs),
        "tasks": list(info.tasks),
        "lost_threads": info.lost_threads,
    }
    conn.execute(
        "INSERT INTO workers (id, last_heartbeat, data) VALUES (?, ?, ?) ON CONFLICT (id) "
        "DO UPDATE SET last_heartbeat = excluded.last_heartbeat, data = excluded.data",
        (info.id, to_us(info.last_heartbeat), dumps(data)),
    )


def worker_remove(conn: sqlite3.Connection, worker_id: str) -> None:
    conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))


def workers_list(conn: sqlite3.Connection) -> list[WorkerInfo]:
    out = []
    for worker_id, beat, data in conn.execute(
        "SELECT id, last_heartbeat, data FROM workers ORDER BY id"
    ):
        d = json.loads(data)
        started, last = from_us(d["started_at"]), from_us(beat)
        assert started is not None and last is not None
        out.append(
            WorkerInfo(
                id=worker_id,
                host=d["host"],
                pid=d["pid"],
                queues=tuple(d["queues"]),
                concurrency=d["concurrency"],
                started_at=started,
                last_heartbeat=last,
                current_jobs=tuple(d["current_jobs"]),
                # Absent in rows written before workers registered their tasks.
                tasks=tuple(d.get("tasks", ())),
                lost_threads=d.get("lost_threads", 0),  # absent before workers reported them
            )
        )
    return out


def workers_prune(conn: sqlite3.Connection, older_than: datetime) -> int:
    return conn.execute(
        "DELETE FROM workers WHERE last_heartbeat < ?", (to_us(older_than),)
    ).rowcount
