"""The worker's side of the Redis backend: batch claims (merged across queues by priority),
heartbeats, progress and the fenced outcome writes (complete, fail, snooze, cancel, release).
"""

from __future__ import annotations

import heapq
import os
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from taskyard.backends.redis.codec import decode_job, dumps, to_us
from taskyard.backends.redis.connection import RedisConnection
from taskyard.clock import utcnow
from taskyard.core.job import (
    AttemptError,
    Completion,
    Job,
    JobStatus,
    LeaseReport,
    Progress,
    rescue_decision,
)
from taskyard.errors import LeaseLost

__all__ = ("ClaimsMixin",)

#: Due scheduled jobs a claim promotes on its way (the Promoter service catches up the rest).
PROMOTE_CAP = 1000

#: Pending jobs of other tasks one filtered claim looks past in one queue, at most: a queue
#: full of jobs this worker does not know costs a bounded scan. Jobs further behind are
#: claimed once those ahead are claimed by a worker that knows them (or cancelled).
SKIP_SCAN_CAP = 1000


class ClaimsMixin(RedisConnection):
    """Claim jobs and record what became of them, fenced by lease tokens."""

    async def job_claim(
        self,
        *,
        queues: Sequence[str] | None,
        limit: int,
        worker_id: str,
        lease: float,
        now: datetime | None = None,
        tasks: Collection[str] | None = None,
    ) -> list[Job]:
        if limit <= 0 or (tasks is not None and not tasks):
            return []
        at = "" if now is None else to_us(now)  # '': the scripts read the server's clock
        known = None if tasks is None else sorted(set(tasks))
        names = list(queues) if queues is not None else await self._known_queues()
        if len(names) == 1:
            return (await self._claim_from(names[0], limit, worker_id, lease, at, None, known))[0]
        # Merge the queues by their best pending job: claim from the best queue only jobs that
        # beat the next queue's best, then re-rank (see docs/redis.md, "Claims across queues").
        ranked = await self._claim_order(names, at)
        claimed: list[Job] = []
        while ranked and len(claimed) < limit:
            heapq.heapify(ranked)
            _, _, name = heapq.heappop(ranked)
            bound = ranked[0][0] if ranked else None
            jobs, rest = await self._claim_from(
                name, limit - len(claimed), worker_id, lease, at, bound, known
            )
            claimed += jobs
            if rest is not None:
                ranked.append((rest, len(claimed), name))
        return claimed

    async def _claim_from(
        self,
        queue: str,
        limit: int,
        worker_id: str,
        lease: float,
        at: int | str,
        bound: float | None,
        tasks: list[str] | None,
    ) -> tuple[list[Job], float | None]:
        """Claim from one queue at `at` (µs, '' = the server's clock); also returns its best
        remaining score (of `tasks`) if `bound` stopped it."""
        args: list[Any] = [
            at,
            limit,
            worker_id,
            round(lease * 1_000_000),
            os.urandom(12).hex() + ":",
            PROMOTE_CAP,
            "" if bound is None else repr(bound),
            *(("",) if tasks is None else (SKIP_SCAN_CAP, *tasks)),
        ]
        with self._guard:
            reply, rest = await self._job_script("claim", queue, args)
        jobs = []
        for job_id, fields in reply:
            self._remember(job_id, queue)
            jobs.append(decode_job(job_id, queue, fields))
        return jobs, (float(rest) if rest else None)

    async def _claim_order(self, names: list[str], at: int | str) -> list[tuple[float, int, str]]:
        """(best pending score, tie-break, queue) of the queues with pending work, after
        promoting their due scheduled jobs (so those compete by priority too)."""
        with self._guard:
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                await self._job_script("promote", name, [at, PROMOTE_CAP], client=pipe)
                pipe.zrange(self._keys.queue_key(name, "pending"), 0, 0, withscores=True)
            replies = await self._execute(pipe)
        ranked: list[tuple[float, int, str]] = []
        for i, name in enumerate(names):
            top = replies[2 * i + 1]
            if top:
                ranked.append((top[0][1], i, name))
        return ranked

    async def jobs_extend_leases(
        self, *, leases: Mapping[str, str], lease: float, now: datetime | None = None
    ) -> LeaseReport:
        at = "" if now is None else to_us(now)  # '': the script reads the server's clock
        lost: set[str] = set()
        cancel: set[str] = set()
        groups: dict[str, list[str]] = defaultdict(list)
        for job_id, queue in (await self._queues_of(leases)).items():
            if queue is None:
                lost.add(job_id)
            else:
                groups[queue] += (job_id, leases[job_id])
        if groups:
            with self._guard:
                pipe = self.client.pipeline(transaction=False)
                for queue, pairs in groups.items():
                    await self._job_script(
                        "extend", queue, [at, round(lease * 1_000_000), *pairs], client=pipe
                    )
                for queue_lost, queue_cancel in await self._execute(pipe):
                    lost.update(queue_lost)
                    cancel.update(queue_cancel)
        return LeaseReport(lost=frozenset(lost), cancel_requested=frozenset(cancel))

    async def _owned_script(self, name: str, job_id: str, args: list[Any]) -> Any:
        queue = await self._queue_of(job_id)
        if queue is None:
            raise LeaseLost.of_job(job_id)
        with self._guard:
            reply = await self._job_script(name, queue, args)
        if not reply:
            raise LeaseLost.of_job(job_id)
        return queue, reply

    async def job_set_progress(
        self, *, job_id: str, lease_token: str, progress: Progress, now: datetime | None = None
    ) -> None:
        doc = dumps({"percent": progress.percent, "message": progress.message})
        await self._owned_script("progress", job_id, ["", job_id, lease_token, doc])

    async def jobs_complete(
        self, *, completions: Sequence[Completion], now: datetime | None = None
    ) -> list[str]:
        now = now or utcnow()
        queues = await self._queues_of(c.job_id for c in completions)
        lost = [c.job_id for c in completions if queues[c.job_id] is None]
        groups: dict[str, list[Any]] = defaultdict(list)
        for c in completions:
            queue = queues[c.job_id]
            if queue is not None:
                result = "" if c.result is None else dumps(c.result)
                progress = "" if c.progress is None else dumps(c.progress.to_json())
                groups[queue] += (c.job_id, c.lease_token, result, progress)
        if groups:
            with self._guard:
                pipe = self.client.pipeline(transaction=False)
                for queue, rows in groups.items():
                    await self._job_script("complete", queue, [to_us(now), *rows], client=pipe)
                for refused in await self._execute(pipe):
                    lost.extend(refused)
        return lost

    async def job_fail(
        self,
        *,
        job_id: str,
        lease_token: str,
        error: AttemptError,
        retry_at: datetime | None,
        now: datetime | None = None,
    ) -> Job:
        now = now or utcnow()
        retry = "" if retry_at is None else to_us(retry_at)
        args = [to_us(now), job_id, lease_token, dumps(error.to_json()), retry]
        queue, fields = await self._owned_script("fail", job_id, args)
        return decode_job(job_id, queue, fields)

    async def job_snooze(
        self, *, job_id: str, lease_token: str, run_at: datetime, now: datetime | None = None
    ) -> Job:
        args = ["", job_id, lease_token, to_us(run_at)]
        queue, fields = await self._owned_script("snooze", job_id, args)
        return decode_job(job_id, queue, fields)

    async def job_finish_cancelled(
        self, *, job_id: str, lease_token: str, reason: str, now: datetime | None = None
    ) -> Job:
        now = now or utcnow()
        args = [to_us(now), job_id, lease_token, dumps({"cancelled": reason})]
        queue, fields = await self._owned_script("finish_cancelled", job_id, args)
        return decode_job(job_id, queue, fields)

    async def job_rescue(
        self, *, job_id: str, lease_token: str, reason: str, now: datetime | None = None
    ) -> Job:
        now = now or utcnow()
        queue = await self._queue_of(job_id)
        job = None
        if queue is not None:
            with self._guard:
                fields = await self.client.hgetall(self._keys.job(queue, job_id))
            job = decode_job(job_id, queue, fields) if fields else None
        if job is None or job.status is not JobStatus.RUNNING or job.lease_token != lease_token:
            raise LeaseLost.of_job(job_id)
        # The decision is made from the job as read; the script applies it only if the token
        # still owns the job, and while it does nobody else changes the fields it reads.
        d = rescue_decision(job, now, reason)
        args = [to_us(now), job_id, lease_token, d.status.value, d.attempt, d.rescues,
                dumps(d.error.to_json())]
        queue, fields = await self._owned_script("rescue_held", job_id, args)
        return decode_job(job_id, queue, fields)

    async def job_release(
        self, *, job_id: str, lease_token: str, now: datetime | None = None
    ) -> None:
        queue = await self._queue_of(job_id)
        if queue is not None:
            with self._guard:
                await self._job_script("release", queue, ["", job_id, lease_token])
