"""Queue settings and counts, statistics, schedules, leadership and the worker registry of
the Redis backend (everything that is not a job transition).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from taskyard.backends.protocol import UNSET
from taskyard.backends.redis import stats
from taskyard.backends.redis.codec import dumps, from_us, to_us
from taskyard.backends.redis.connection import RedisConnection
from taskyard.clock import utcnow
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
    stats_binned,
)
from taskyard.core.schedule import Schedule

__all__ = ("ClusterMixin",)

_STATS_TTL = int(STATS_RETENTION.total_seconds())
_TASK_CHUNK = 1000  # job hashes read per round-trip by task_counts
_STATUS_KEYS = (
    (JobStatus.BLOCKED, "blocked"),
    (JobStatus.SCHEDULED, "scheduled"),
    (JobStatus.PENDING, "pending"),
    (JobStatus.RUNNING, "running"),
    (JobStatus.COMPLETED, "done:completed"),
    (JobStatus.FAILED, "done:failed"),
    (JobStatus.CANCELLED, "done:cancelled"),
)


def _settings(name: str, h: dict[str, str]) -> QueueSettings:
    rate = RateLimit(limit=int(h["rl"]), period=float(h["rp"])) if "rl" in h else None
    conc = int(h["conc"]) if "conc" in h else None
    return QueueSettings(
        name=name, paused=h.get("paused") == "1", concurrency=conc, rate_limit=rate
    )


def _schedule(h: dict[str, str]) -> Schedule:
    schedule = Schedule.from_json(json.loads(h["doc"]))
    schedule = schedule.replace(
        last_fire_at=from_us(h["last"]) if h.get("last") else None,
        next_fire_at=from_us(h["next"]) if h.get("next") else None,
    )
    # `conf` is written by schedules_confirm/expire without rewriting the document.
    return schedule.replace(confirmed_at=from_us(h["conf"])) if h.get("conf") else schedule


def _declared(s: Schedule) -> str:
    if s.source != "code":
        return ""
    return str(to_us(s.confirmed_at)) if s.confirmed_at else "-1"


def _worker_json(info: WorkerInfo) -> str:
    return dumps(
        {
            "id": info.id,
            "host": info.host,
            "pid": info.pid,
            "queues": list(info.queues),
            "concurrency": info.concurrency,
            "started_at": to_us(info.started_at),
            "last_heartbeat": to_us(info.last_heartbeat),
            "current_jobs": list(info.current_jobs),
            "tasks": list(info.tasks),
            "lost_threads": info.lost_threads,
        }
    )


def _worker(doc: str) -> WorkerInfo:
    d = json.loads(doc)
    return WorkerInfo(
        id=d["id"],
        host=d["host"],
        pid=d["pid"],
        queues=tuple(d["queues"]),
        concurrency=d["concurrency"],
        started_at=from_us(d["started_at"]),
        last_heartbeat=from_us(d["last_heartbeat"]),
        current_jobs=tuple(d["current_jobs"]),
        tasks=tuple(d.get("tasks", ())),  # absent in entries of older workers
        lost_threads=d.get("lost_threads", 0),  # likewise
    )


class ClusterMixin(RedisConnection):
    """Everything shared by the whole installation rather than one job."""

    # -- queues ------------------------------------------------------------------------------
    async def queue_counts(self) -> list[QueueCounts]:
        names = await self._all_queues()
        with self._guard:
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                for _, key in _STATUS_KEYS:
                    pipe.zcard(self._keys.queue_key(name, key))
            replies = await self._execute(pipe)
        out = []
        for i, name in enumerate(names):
            row = replies[i * len(_STATUS_KEYS) : (i + 1) * len(_STATUS_KEYS)]
            counts = {status: n for (status, _), n in zip(_STATUS_KEYS, row, strict=True) if n}
            out.append(QueueCounts(queue=name, counts=counts))
        return out

    async def task_counts(self, *, now: datetime | None = None) -> list[TaskCounts]:
        # No per-task index: read the active ids of each queue, then their task (and run_at)
        # in pipelined chunks, so one large backlog never blocks the server in one command.
        now_us = to_us(now or utcnow())
        names = await self._all_queues()
        with self._guard:
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.zrange(self._keys.queue_key(name, "pending"), 0, -1)
                pipe.zrange(self._keys.queue_key(name, "scheduled"), 0, -1, withscores=True)
                pipe.zrange(self._keys.queue_key(name, "running"), 0, -1)
            replies = await self._execute(pipe)
        # (queue, id, status column, due) for every active job.
        active: list[tuple[str, str, int, bool]] = []
        for i, name in enumerate(names):
            pending, scheduled, running = replies[3 * i : 3 * i + 3]
            active += [(name, job_id, 0, True) for job_id in pending]
            active += [(name, job_id, 1, score <= now_us) for job_id, score in scheduled]
            active += [(name, job_id, 2, False) for job_id in running]
        cells: dict[tuple[str, str], list[Any]] = {}
        for start in range(0, len(active), _TASK_CHUNK):
            chunk = active[start : start + _TASK_CHUNK]
            with self._guard:
                pipe = self.client.pipeline(transaction=False)
                for queue, job_id, _, _ in chunk:
                    pipe.hmget(self._keys.job(queue, job_id), "t", "ra")
                fields = await self._execute(pipe)
            for (queue, _, column, due), (task, run_at) in zip(chunk, fields, strict=True):
                if task is None:
                    continue  # finished and pruned between the two reads
                cell = cells.setdefault((queue, task), [0, 0, 0, None])
                cell[column] += 1
                if due and run_at is not None and (cell[3] is None or int(run_at) < cell[3]):
                    cell[3] = int(run_at)
        return [
            TaskCounts(
                queue=q, task=t, pending=c[0], scheduled=c[1], running=c[2],
                waiting_since=from_us(c[3]) if c[3] is not None else None,
            )
            for (q, t), c in sorted(cells.items())
        ]

    async def queue_get(self, *, queue: str) -> QueueSettings:
        with self._guard:
            h = await self.client.hgetall(self._keys.queue_key(queue, "settings"))
        return _settings(queue, h)

    async def queues_list(self) -> list[QueueSettings]:
        names = await self._all_queues()
        with self._guard:
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(self._keys.queue_key(name, "settings"))
            replies = await self._execute(pipe)
        return [_settings(name, h) for name, h in zip(names, replies, strict=True)]

    async def queue_update(
        self,
        *,
        queue: str,
        paused: bool = UNSET,
        concurrency: int | None = UNSET,
        rate_limit: RateLimit | None = UNSET,
    ) -> QueueSettings:
        key = self._keys.queue_key(queue, "settings")
        if concurrency is not UNSET and concurrency is not None and concurrency < 1:
            raise ValueError("queue concurrency must be at least 1 (or None for no limit)")
        self._saw_queue(queue)
        with self._guard:
            # One MULTI/EXEC: the queue is listed and its settings written together. (A
            # Cluster client cannot span the two slots: it lists the queue first, which alone
            # is harmless, as a listed queue without settings has the defaults.)
            if not self.single_node:
                await self.client.sadd(self._keys.queues, queue)
            pipe = self.client.pipeline(transaction=True)
            if self.single_node:
                pipe.sadd(self._keys.queues, queue)
            if paused is not UNSET:
                pipe.hset(key, "paused", "1" if paused else "0")
            if concurrency is not UNSET:
                if concurrency is None:
                    pipe.hdel(key, "conc")
                else:
                    pipe.hset(key, "conc", int(concurrency))
            if rate_limit is not UNSET:
                if rate_limit is None:
                    pipe.hdel(key, "rl", "rp", "rpu")
                else:
                    rpu = max(1, round(rate_limit.period * 1_000_000))
                    pipe.hset(
                        key,
                        mapping={
                            "rl": rate_limit.limit,
                            "rp": repr(float(rate_limit.period)),
                            "rpu": rpu,
                        },
                    )
            pipe.hgetall(key)
            replies = await self._execute(pipe)
            if self.sharded_wakeups:
                await self.client.spublish(self._keys.queue_channel(queue), queue)
            else:
                await self.client.publish(self._keys.channel, queue)
        return _settings(queue, replies[-1])

    # -- statistics --------------------------------------------------------------------------
    async def stats_record(self, *, rows: Sequence[StatsRow]) -> None:
        if not rows:
            return
        with self._guard:
            # One MULTI/EXEC (every key is in the `{g}` slot): a batch of counters is added
            # whole or not at all, so a retry after a cut connection never counts twice.
            pipe = self.client.pipeline(transaction=True)
            minutes = set()
            for row in rows:
                minute = to_us(row.minute)
                key = self._keys.stats_minute(minute)
                for field, n in stats.fields_of(row):
                    pipe.hincrby(key, field, n)
                pipe.expire(key, _STATS_TTL)
                minutes.add(minute)
            self._index_minutes(pipe, minutes)
            await self._execute(pipe)

    def _index_minutes(self, pipe: Any, minutes: set[int]) -> None:
        pipe.zadd(self._keys.stats_index, {str(m): m for m in minutes})
        pipe.zremrangebyscore(self._keys.stats_index, "-inf", f"({max(minutes) - _STATS_TTL * 1_000_000}")

    async def _stats_hashes(self, since: datetime) -> list[tuple[int, dict[str, str]]]:
        with self._guard:
            minutes = await self.client.zrangebyscore(self._keys.stats_index, to_us(since), "+inf")
            pipe = self.client.pipeline(transaction=False)
            for minute in minutes:
                pipe.hgetall(self._keys.stats_minute(int(minute)))
            replies = await self._execute(pipe)
        return [(int(m), h) for m, h in zip(minutes, replies, strict=True)]

    async def stats_read(self, *, since: datetime, bin_minutes: int = 1) -> list[StatsRow]:
        rows = [row for minute, h in await self._stats_hashes(since) for row in stats.rows_of(from_us(minute), h)]
        rows.sort(key=lambda r: (r.minute, r.queue, r.task))
        return stats_binned(rows, bin_minutes)

    async def stats_record_depth(self, *, rows: Sequence[DepthRow]) -> None:
        if not rows:
            return
        with self._guard:
            pipe = self.client.pipeline(transaction=True)
            minutes = set()
            for row in rows:
                minute = to_us(row.minute)
                key = self._keys.stats_minute(minute)
                pipe.hset(key, f"d:{row.queue}", row.depth)
                pipe.expire(key, _STATS_TTL)
                minutes.add(minute)
            self._index_minutes(pipe, minutes)
            await self._execute(pipe)

    async def stats_read_depth(self, *, since: datetime) -> list[DepthRow]:
        rows = [row for minute, h in await self._stats_hashes(since) for row in stats.depths_of(from_us(minute), h)]
        rows.sort(key=lambda r: (r.minute, r.queue))
        return rows

    # -- schedules ---------------------------------------------------------------------------
    def _schedule_args(self, schedules: Sequence[Schedule]) -> list[str]:
        args: list[str] = []
        for s in schedules:
            args += (
                s.name,
                dumps(s.to_json()),
                str(to_us(s.last_fire_at)) if s.last_fire_at else "",
                str(to_us(s.next_fire_at)) if s.next_fire_at else "",
                "1" if s.enabled else "0",
                s.owner or "",
                _declared(s),
            )
        return args

    async def _store_schedules(self, owner: str, schedules: Sequence[Schedule]) -> None:
        with self._guard:
            await self.scripts.schedules_store(
                keys=[self._keys.scheds, self._keys.sched_due, self._keys.sched_declared],
                args=[self._keys.global_base, owner, *self._schedule_args(schedules)],
            )

    async def schedule_upsert(self, *, schedule: Schedule) -> Schedule:
        await self._store_schedules("", [schedule])
        return schedule

    async def schedule_get(self, *, name: str) -> Schedule | None:
        with self._guard:
            h = await self.client.hgetall(self._keys.schedule(name))
        return _schedule(h) if h else None

    async def _schedules(self, names: Sequence[str]) -> list[Schedule]:
        with self._guard:
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(self._keys.schedule(name))
            replies = await self._execute(pipe)
        return [_schedule(h) for h in replies if h]

    async def schedules_list(self, *, owner: str | None = None) -> list[Schedule]:
        key = self._keys.scheds if owner is None else self._keys.sched_owner(owner)
        with self._guard:
            names = await self.client.smembers(key)
        return sorted(await self._schedules(sorted(names)), key=lambda s: s.name)

    async def schedules_get(self, *, names: Sequence[str]) -> list[Schedule]:
        return sorted(await self._schedules(sorted(set(names))), key=lambda s: s.name)

    async def schedules_confirm(self, *, names: Sequence[str], now: datetime | None = None) -> int:
        if not names:
            return 0
        with self._guard:
            return int(
                await self.scripts.schedules_confirm(
                    keys=[self._keys.sched_declared],
                    args=[self._keys.global_base, str(to_us(now)) if now else "", *names],
                )
            )

    async def schedules_expire_declared(self, *, grace: float, now: datetime | None = None) -> list[str]:
        with self._guard:
            gone = await self.scripts.schedules_expire(
                keys=[self._keys.scheds, self._keys.sched_due, self._keys.sched_declared],
                args=[self._keys.global_base, str(to_us(now)) if now else "", round(grace * 1_000_000)],
            )
        return sorted(gone)

    async def _delete_schedules(self, args: list[str]) -> int:
        with self._guard:
            return int(
                await self.scripts.schedules_delete(
                    keys=[self._keys.scheds, self._keys.sched_due, self._keys.sched_declared],
                    args=[self._keys.global_base, *args],
                )
            )

    async def schedule_delete(self, *, name: str) -> bool:
        return await self._delete_schedules([name]) > 0

    async def schedules_replace_owner(self, *, owner: str, schedules: Sequence[Schedule]) -> None:
        if not owner:
            raise ValueError("owner must not be empty")
        await self._store_schedules(owner, schedules)

    async def schedules_delete_owner(self, *, owner: str) -> int:
        return await self._delete_schedules(["", owner])

    async def schedules_due(self, *, now: datetime | None = None) -> list[Schedule]:
        now = now or utcnow()
        with self._guard:
            names = await self.client.zrangebyscore(self._keys.sched_due, "-inf", to_us(now))
        due = [s for s in await self._schedules(names) if s.enabled and s.next_fire_at]
        return sorted(due, key=lambda s: (s.next_fire_at, s.name))

    async def schedule_record_fire(
        self, *, name: str, fire_time: datetime, next_fire_at: datetime | None
    ) -> bool:
        nxt = str(to_us(next_fire_at)) if next_fire_at else ""
        with self._guard:
            done = await self.scripts.schedule_fire(
                keys=[self._keys.schedule(name), self._keys.sched_due],
                args=[name, to_us(fire_time), nxt],
            )
        return bool(done)

    # -- leadership --------------------------------------------------------------------------
    async def leader_attempt_elect(
        self, *, name: str, holder: str, ttl: float, now: datetime | None = None
    ) -> bool:
        ttl_us = max(1, round(ttl * 1_000_000))
        with self._guard:
            won = await self.scripts.leader_elect(
                keys=[self._keys.leader(name)],
                args=[holder, "" if now is None else to_us(now), ttl_us, max(1, ttl_us // 1000)],
            )
        return bool(won)

    async def leader_resign(self, *, name: str, holder: str) -> None:
        with self._guard:
            await self.scripts.leader_resign(keys=[self._keys.leader(name)], args=[holder])

    async def leader_get(self, *, name: str, now: datetime | None = None) -> LeaderInfo | None:
        with self._guard:
            holder, elected, expires = await self.client.hmget(
                self._keys.leader(name), "h", "e", "x"
            )
            if holder is not None and now is None:
                seconds, micros = await self.client.time()  # the server's clock, as elections use
                now_us = seconds * 1_000_000 + micros
        if holder is None or int(expires) <= (to_us(now) if now is not None else now_us):
            return None
        return LeaderInfo(name, holder, from_us(elected), from_us(expires))

    # -- workers -----------------------------------------------------------------------------
    async def worker_heartbeat(self, *, info: WorkerInfo) -> None:
        with self._guard:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(self._keys.workers, info.id, _worker_json(info))
            pipe.zadd(self._keys.workers_hb, {info.id: to_us(info.last_heartbeat)})
            await self._execute(pipe)

    async def worker_remove(self, *, worker_id: str) -> None:
        with self._guard:
            pipe = self.client.pipeline(transaction=True)
            pipe.hdel(self._keys.workers, worker_id)
            pipe.zrem(self._keys.workers_hb, worker_id)
            await self._execute(pipe)

    async def workers_list(self) -> list[WorkerInfo]:
        with self._guard:
            docs = await self.client.hvals(self._keys.workers)
        return sorted((_worker(d) for d in docs), key=lambda w: w.id)

    async def workers_prune(self, *, older_than: datetime) -> int:
        with self._guard:
            n = await self.scripts.workers_prune(
                keys=[self._keys.workers, self._keys.workers_hb], args=[to_us(older_than)]
            )
        return int(n)
