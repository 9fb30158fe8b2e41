"""The worker's side of the Redis backend: batch claims (merged across queues by priority),
heartbeats, progress and the one owned write, `jobs_settle` (`scripts/settle.lua`).
"""

from __future__ import annotations

import asyncio
import heapq
import os
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from taskyard.backends.redis.codec import decode_job, dumps, to_us
from taskyard.backends.redis.connection import RedisConnection
from taskyard.clock import utcnow
from taskyard.core.job import Job, JobStatus, LeaseReport, Progress, RescueDecision, rescue_decision
from taskyard.core.settle import Settle, Settled, SettleKind
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

    async def job_set_progress(
        self, *, job_id: str, lease_token: str, progress: Progress, now: datetime | None = None
    ) -> None:
        queue = await self._queue_of(job_id)
        reply = None
        if queue is not None:
            doc = dumps({"percent": progress.percent, "message": progress.message})
            with self._guard:
                reply = await self._job_script("progress", queue, ["", job_id, lease_token, doc])
        if not reply:
            raise LeaseLost.of_job(job_id)

    async def jobs_settle(
        self, *, outcomes: Sequence[Settle], now: datetime | None = None
    ) -> list[Settled]:
        now = now or utcnow()
        queues = await self._queues_of(o.job_id for o in outcomes)
        decisions = await self._rescue_decisions(
            [(i, o) for i, o in enumerate(outcomes) if o.kind is SettleKind.RESCUED and queues[o.job_id]],
            queues,
            now,
        )
        # One script per queue (a queue's keys share a hash slot), the queues side by side.
        groups: dict[str, list[int]] = defaultdict(list)
        for i, o in enumerate(outcomes):
            queue = queues[o.job_id]
            if queue is not None and (o.kind is not SettleKind.RESCUED or i in decisions):
                groups[queue].append(i)
        names = list(groups)
        replies = await asyncio.gather(*(
            self._settle_queue(name, [_record(outcomes[i], decisions.get(i)) for i in groups[name]], now)
            for name in names
        ))
        answers = [Settled(o.job_id, owned=False) for o in outcomes]
        for name, reply in zip(names, replies, strict=True):
            for i, fields in zip(groups[name], reply, strict=True):
                job_id = outcomes[i].job_id
                if fields == 1:
                    answers[i] = Settled(job_id, owned=True)
                elif fields:
                    answers[i] = Settled(job_id, owned=True, job=decode_job(job_id, name, fields))
        return answers

    async def _settle_queue(self, queue: str, records: list[list[Any]], now: datetime) -> list[Any]:
        args: list[Any] = [to_us(now)]
        for record in records:
            args += record
        with self._guard:
            reply: list[Any] = await self._job_script("settle", queue, args)
        return reply

    async def _rescue_decisions(
        self, outcomes: list[tuple[int, Settle]], queues: Mapping[str, str | None], now: datetime
    ) -> dict[int, RescueDecision]:
        """`rescue_decision` for each rescued outcome whose job, as read, its token owns (by
        index among all outcomes). The script applies a decision only if the token still owns
        the job, and while it does nobody else changes the fields the decision reads."""
        if not outcomes:
            return {}
        with self._guard:
            pipe = self.client.pipeline(transaction=False)
            for _, o in outcomes:
                pipe.hgetall(self._keys.job(queues[o.job_id] or "", o.job_id))
            replies = await self._execute(pipe)
        decisions: dict[int, RescueDecision] = {}
        for (i, o), fields in zip(outcomes, replies, strict=True):
            if not fields:
                continue
            job = decode_job(o.job_id, queues[o.job_id] or "", fields)
            if job.status is JobStatus.RUNNING and job.lease_token == o.lease_token:
                decisions[i] = rescue_decision(job, now, o.reason)
        return decisions


def _record(o: Settle, decision: RescueDecision | None) -> list[Any]:
    """The 7 fields of one outcome for `settle.lua`."""
    extra: list[Any]
    match o.kind:
        case SettleKind.COMPLETED:
            extra = [
                "" if o.result is None else dumps(o.result),
                "" if o.progress is None else dumps(o.progress.to_json()),
            ]
        case SettleKind.FAILED:
            assert o.error is not None
            extra = [dumps(o.error.to_json()), "" if o.retry_at is None else to_us(o.retry_at)]
        case SettleKind.SNOOZED:
            assert o.run_at is not None
            extra = [to_us(o.run_at)]
        case SettleKind.CANCELLED:
            extra = [dumps({"cancelled": o.reason})]
        case SettleKind.RELEASED:
            extra = []
        case SettleKind.RESCUED:
            assert decision is not None
            d = decision
            extra = [d.status.value, d.attempt, d.rescues, dumps(d.error.to_json())]
    return [o.kind.value, o.job_id, o.lease_token, *extra, *[""] * (4 - len(extra))]
