"""Maintenance operations of the Redis backend: rescue expired leases, promote due jobs,
prune finished jobs; each reads every queue in one pipelined round-trip, then acts per queue.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime
from typing import Any

from taskyard.backends.redis.codec import decode_job, dumps, from_us, to_us
from taskyard.backends.redis.connection import RedisConnection
from taskyard.core.job import (
    JobStatus,
    RescueReport,
    check_prunable,
    rescue_decision,
)

__all__ = ("MaintenanceMixin",)

#: Jobs one maintenance script call handles, so no single call blocks Redis for long.
BATCH = 1000


class MaintenanceMixin(RedisConnection):
    """Leader-side upkeep of every queue."""

    async def jobs_rescue_expired(self, *, now: datetime | None = None) -> RescueReport:
        at = "" if now is None else to_us(now)  # '': the scan reads the server's clock
        rescued: list[str] = []
        failed: list[str] = []
        queues = await self._all_queues()
        while queues:
            # One pipelined read of every queue's expired leases, then a fenced rescue script
            # for the queues that have some.
            with self._guard:
                pipe = self.client.pipeline(transaction=False)
                for queue in queues:
                    await self._job_script("rescue_scan", queue, [at, BATCH], client=pipe)
                scans = await self._execute(pipe)
            again = []
            for queue, (scanned_at, expired) in zip(queues, scans, strict=True):
                if not expired:
                    continue
                # The rescue script re-checks each lease against the scan's time.
                args: list[Any] = [scanned_at]
                when = from_us(scanned_at)
                for job_id, fields in expired:
                    job = decode_job(job_id, queue, fields)
                    d = rescue_decision(job, when)
                    args += (job_id, job.lease_token, d.status.value, d.attempt, d.rescues,
                             dumps(d.error.to_json()))
                with self._guard:
                    queue_rescued, queue_failed = await self._job_script("rescue", queue, args)
                rescued += queue_rescued
                failed += queue_failed
                if len(expired) >= BATCH:
                    again.append(queue)
            queues = again
        return RescueReport(rescued=tuple(rescued), failed=tuple(failed))

    async def jobs_promote_due(self, *, now: datetime | None = None) -> int:
        now_us = "" if now is None else to_us(now)  # '': the script reads the server's clock
        moved = 0
        queues = await self._all_queues()
        while queues:
            with self._guard:
                pipe = self.client.pipeline(transaction=False)
                for queue in queues:
                    await self._job_script("promote", queue, [now_us, BATCH], client=pipe)
                counts = [int(n) for n in await self._execute(pipe)]
            moved += sum(counts)
            queues = [q for q, n in zip(queues, counts, strict=True) if n >= BATCH]
        return moved

    async def jobs_prune(
        self,
        *,
        status: JobStatus,
        keep_last: int | None = None,
        older_than: datetime | None = None,
        queue: str | None = None,
        exclude_queues: Collection[str] = (),
    ) -> int:
        check_prunable(status)
        skip = frozenset(exclude_queues)
        queues = [
            q for q in await self._all_queues() if (queue is None or q == queue) and q not in skip
        ]
        keep = await self._keep_per_queue(status, keep_last, queues)
        older = "" if older_than is None else to_us(older_than)
        deleted = 0
        for queue in queues:
            keep_q = "" if keep is None else keep.get(queue, 0)
            if keep_q == "" and older == "":
                continue
            while True:
                with self._guard:
                    ids = await self._job_script(
                        "prune", queue, [status.value, keep_q, older, BATCH]
                    )
                    if ids:
                        await self.client.hdel(self._keys.ids, *ids)
                for job_id in ids:
                    self._queue_cache.pop(job_id, None)
                deleted += len(ids)
                if len(ids) < BATCH:
                    break
        return deleted

    async def _keep_per_queue(
        self, status: JobStatus, keep_last: int | None, queues: list[str]
    ) -> dict[str, int] | None:
        """How many of each queue's newest jobs belong to the newest `keep_last` overall."""
        if keep_last is None:
            return None
        if keep_last <= 0:
            return {}
        with self._guard:
            pipe = self.client.pipeline(transaction=False)
            for queue in queues:
                pipe.zrevrange(
                    self._keys.queue_key(queue, f"done:{status.value}"),
                    0,
                    keep_last - 1,
                    withscores=True,
                )
            replies = await self._execute(pipe)
        newest = sorted(
            (
                (score, job_id, queue)
                for queue, rows in zip(queues, replies, strict=True)
                for job_id, score in rows
            ),
            reverse=True,
        )[:keep_last]
        keep: dict[str, int] = defaultdict(int)
        for _, _, queue in newest:
            keep[queue] += 1
        return keep
