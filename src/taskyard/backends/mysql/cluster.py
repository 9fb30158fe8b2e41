"""Queue settings and counts, statistics, schedules, the leader lease and the worker registry
of `MysqlBackend`: thin methods over
`catalog`'s statements, each one transaction. Mixed into the backend, whose `_run` they use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from asyncmy.cursors import Cursor

from taskyard.backends.protocol import UNSET
from taskyard.core.cluster import LeaderInfo, WorkerInfo
from taskyard.core.coverage import TaskCounts
from taskyard.core.queue import DepthRow, QueueCounts, QueueSettings, RateLimit, StatsRow
from taskyard.core.schedule import Schedule

from . import catalog, jobs
from .connection import is_duplicate_key
from .rows import db_time
from .schema import Tables

__all__ = ("ClusterOps",)

T = TypeVar("T")


class ClusterOps:
    """The schedule, leadership and worker operations of the protocol."""

    tables: Tables

    async def _run(self, what: str, fn: Callable[[Cursor], Awaitable[T]]) -> T:
        raise NotImplementedError

    def _notify(self) -> None:
        raise NotImplementedError

    # -- queues ------------------------------------------------------------------------------
    async def queue_counts(self) -> list[QueueCounts]:
        return await self._run("queue_counts", lambda cur: catalog.queue_counts(cur, self.tables))

    async def task_counts(self, *, now: datetime | None = None) -> list[TaskCounts]:
        return await self._run(
            "task_counts", lambda cur: catalog.task_counts(cur, self.tables, now)
        )

    async def queue_get(self, *, queue: str) -> QueueSettings:
        return await self._run("queue_get", lambda cur: catalog.queue_get(cur, self.tables, queue))

    async def queues_list(self) -> list[QueueSettings]:
        return await self._run("queues_list", lambda cur: catalog.queues_list(cur, self.tables))

    async def queue_update(
        self,
        *,
        queue: str,
        paused: bool = UNSET,
        concurrency: int | None = UNSET,
        rate_limit: RateLimit | None = UNSET,
    ) -> QueueSettings:
        settings = await self._run(
            "queue_update",
            lambda cur: catalog.queue_update(
                cur, self.tables, queue, paused, concurrency, rate_limit
            ),
        )
        self._notify()
        return settings

    # -- statistics --------------------------------------------------------------------------
    async def stats_record(self, *, rows: Sequence[StatsRow]) -> None:
        if rows:
            await self._run("stats_record", lambda cur: catalog.stats_record(cur, self.tables, rows))

    async def stats_read(self, *, since: datetime, bin_minutes: int = 1) -> list[StatsRow]:
        return await self._run(
            "stats_read", lambda cur: catalog.stats_read(cur, self.tables, since, bin_minutes)
        )

    async def stats_record_depth(self, *, rows: Sequence[DepthRow]) -> None:
        if rows:
            await self._run("stats_record_depth", lambda cur: catalog.depth_record(cur, self.tables, rows))

    async def stats_read_depth(self, *, since: datetime) -> list[DepthRow]:
        return await self._run("stats_read_depth", lambda cur: catalog.depth_read(cur, self.tables, since))

    # -- schedules ---------------------------------------------------------------------------
    async def schedule_upsert(self, *, schedule: Schedule) -> Schedule:
        await self._run(
            "schedule_upsert", lambda cur: catalog.schedule_upsert(cur, self.tables, [schedule])
        )
        return schedule

    async def _schedules(self, what: str, where: str, args: Sequence[Any] = ()) -> list[Schedule]:
        return await self._run(
            what, lambda cur: catalog.schedules_select(cur, self.tables, where, args)
        )

    async def schedule_get(self, *, name: str) -> Schedule | None:
        found = await self._schedules("schedule_get", "name = %s", (name,))
        return found[0] if found else None

    async def schedules_list(self, *, owner: str | None = None) -> list[Schedule]:
        if owner is None:
            return await self._schedules("schedules_list", "TRUE ORDER BY name")
        return await self._schedules("schedules_list", "owner = %s ORDER BY name", (owner,))

    async def schedules_get(self, *, names: Sequence[str]) -> list[Schedule]:
        if not names:
            return []
        return await self._schedules(
            "schedules_get", f"name IN ({jobs.marks(len(names))}) ORDER BY name", list(names)
        )

    async def schedules_confirm(self, *, names: Sequence[str], now: datetime | None = None) -> int:
        return await self._run(
            "schedules_confirm", lambda cur: catalog.schedules_confirm(cur, self.tables, names, now)
        )

    async def schedules_expire_declared(
        self, *, grace: float, now: datetime | None = None
    ) -> list[str]:
        return await self._run(
            "schedules_expire_declared",
            lambda cur: catalog.schedules_expire_declared(cur, self.tables, grace, now),
        )

    async def schedule_delete(self, *, name: str) -> bool:
        deleted = await self._run(
            "schedule_delete",
            lambda cur: cur.execute(f"DELETE FROM {self.tables.schedules} WHERE name = %s", (name,)),
        )
        return int(deleted) > 0

    async def schedules_replace_owner(self, *, owner: str, schedules: Sequence[Schedule]) -> None:
        async def replace(cur: Cursor) -> None:
            await cur.execute(f"DELETE FROM {self.tables.schedules} WHERE owner = %s", (owner,))
            await catalog.schedule_upsert(cur, self.tables, schedules)

        await self._run("schedules_replace_owner", replace)

    async def schedules_delete_owner(self, *, owner: str) -> int:
        deleted = await self._run(
            "schedules_delete_owner",
            lambda cur: cur.execute(f"DELETE FROM {self.tables.schedules} WHERE owner = %s", (owner,)),
        )
        return int(deleted)

    async def schedules_due(self, *, now: datetime | None = None) -> list[Schedule]:
        async def due(cur: Cursor) -> list[Schedule]:
            at = db_time(await jobs.server_now(cur, now))
            return await catalog.schedules_select(
                cur, self.tables,
                "enabled AND next_fire_at IS NOT NULL AND next_fire_at <= %s "
                "ORDER BY next_fire_at, name",
                (at,),
            )  # fmt: skip

        return await self._run("schedules_due", due)

    async def schedule_record_fire(
        self, *, name: str, fire_time: datetime, next_fire_at: datetime | None
    ) -> bool:
        return await self._run(
            "schedule_record_fire",
            lambda cur: catalog.schedule_record_fire(cur, self.tables, name, fire_time, next_fire_at),
        )

    # -- leadership --------------------------------------------------------------------------
    async def leader_attempt_elect(
        self, *, name: str, holder: str, ttl: float, now: datetime | None = None
    ) -> bool:
        try:
            return await self._run(
                "leader_attempt_elect",
                lambda cur: catalog.leader_elect(cur, self.tables, name, holder, float(ttl), now),
            )
        except Exception as exc:
            if is_duplicate_key(exc):
                return False  # another candidate's first election committed first
            raise

    async def leader_resign(self, *, name: str, holder: str) -> None:
        await self._run(
            "leader_resign",
            lambda cur: cur.execute(
                f"DELETE FROM {self.tables.leaders} WHERE name = %s AND holder = %s", (name, holder)
            ),
        )

    async def leader_get(self, *, name: str, now: datetime | None = None) -> LeaderInfo | None:
        return await self._run("leader_get", lambda cur: catalog.leader_get(cur, self.tables, name, now))

    # -- workers -----------------------------------------------------------------------------
    async def worker_heartbeat(self, *, info: WorkerInfo) -> None:
        await self._run("worker_heartbeat", lambda cur: catalog.worker_heartbeat(cur, self.tables, info))

    async def worker_remove(self, *, worker_id: str) -> None:
        await self._run(
            "worker_remove",
            lambda cur: cur.execute(f"DELETE FROM {self.tables.workers} WHERE id = %s", (worker_id,)),
        )

    async def workers_list(self) -> list[WorkerInfo]:
        return await self._run("workers_list", lambda cur: catalog.workers_list(cur, self.tables))

    async def workers_prune(self, *, older_than: datetime) -> int:
        deleted = await self._run(
            "workers_prune",
            lambda cur: cur.execute(
                f"DELETE FROM {self.tables.workers} WHERE last_heartbeat < %s", (db_time(older_than),)
            ),
        )
        return int(deleted)
