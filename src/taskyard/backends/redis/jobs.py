"""Client-side job operations of the Redis backend: enqueue (with cluster-wide unique keys),
get, list, cancel and manual retry; each state change is a Lua script over one queue's keys.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from taskyard.backends.redis.codec import decode_job, dumps, encode_draft, new_job, to_us
from taskyard.backends.redis.connection import RedisConnection
from taskyard.clock import utcnow
from taskyard.core.job import (
    ACTIVE_STATUSES,
    Job,
    JobDraft,
    JobFilter,
    JobPage,
)
from taskyard.errors import InvalidTransitionError, JobNotFound

__all__ = ("JobsMixin",)

#: How long a unique key taken by an enqueue whose job is not written yet counts as held.
UNIQUE_GRACE_MS = 5000
#: How many jobs of one queue a search (`JobFilter.q`) reads per call at most: Redis has no
#: text index, so a search is a scan, newest first, bounded per page (docs/redis.md).
SEARCH_BUDGET = 20_000
#: Ids per call of the delete script.
DELETE_BATCH = 500


class JobsMixin(RedisConnection):
    """Enqueue, claim, settle, rescue, prune and query jobs."""

    #: Jobs of one queue a search reads per `jobs_list` call (see SEARCH_BUDGET).
    search_budget: int = SEARCH_BUDGET

    # -- writes by clients -------------------------------------------------------------------
    async def job_enqueue_many(
        self, *, drafts: Sequence[JobDraft], now: datetime | None = None
    ) -> list[Job]:
        if not drafts:
            return []
        now = now or utcnow()
        encoded = [encode_draft(d, now) for d in drafts]
        if self.single_node:
            reserved = await self._submit(
                [
                    [d.id, d.queue, d.unique_key or "", status.value, str(score), *fields]
                    for d, (status, _, score, fields) in zip(drafts, encoded, strict=True)
                ]
            )
        else:
            reserved = await self._reserve([(d.id, d.queue, d.unique_key or "") for d in drafts])
        answers: dict[int, Job] = {}
        for i, r in enumerate(reserved):
            if r[1] == "created":
                answers[i] = new_job(drafts[i], now)
            elif r[1] == "exists":
                answers[i] = decode_job(drafts[i].id, r[0], r[5])
            elif r[1] == "holder":
                answers[i] = decode_job(r[2], r[3], r[5])
        # The two-step reservation of a cluster: 'go' / 'known', and drafts whose unique key
        # another job holds ('held'), which may win the key back. (On one server submit.lua
        # settles all of this itself, so a batch is stored whole or not at all.)
        create = [i for i, r in enumerate(reserved) if r[1] in ("go", "known")]
        held = {i: (r[2], r[3], int(r[4])) for i, r in enumerate(reserved) if r[1] == "held"}
        aliases: dict[int, int] = {}
        if held:
            await self._settle_unique(drafts, held, create, answers, aliases)
        stored = [r[0] for r in reserved]
        for queue in set(stored):
            self._saw_queue(queue)
        # An id already stored in another queue is answered from there, never duplicated.
        groups: dict[str, list[int]] = defaultdict(list)
        for i in create:
            groups[stored[i]].append(i)
        if groups:
            order = []
            with self._guard:
                pipe = self.client.pipeline(transaction=False)
                for queue, indexes in groups.items():
                    batch = []
                    for i in indexes:
                        status, _, score, fields = encoded[i]
                        batch.append([drafts[i].id, status.value, str(score), *fields])
                    order.append((queue, indexes, [dumps(batch)]))
                if self.options.durable_replicas:
                    # Each queue's write waits for its own replicas (WAIT is per connection).
                    replies = await asyncio.gather(
                        *(self._durable_job_script("enqueue", q, args) for q, _, args in order)
                    )
                else:
                    for queue, _, args in order:
                        await self._job_script("enqueue", queue, args, client=pipe)
                    replies = await self._execute(pipe)
            for (queue, indexes, _), reply in zip(order, replies, strict=True):
                for i, entry in zip(indexes, reply, strict=True):
                    if len(entry) == 1:
                        answers[i] = new_job(drafts[i], now)
                    else:
                        answers[i] = decode_job(entry[0], queue, entry[1])
        for i, target in aliases.items():
            answers[i] = answers[target]
        return [answers[i] for i in range(len(drafts))]

    async def _settle_unique(
        self,
        drafts: Sequence[JobDraft],
        held: dict[int, tuple[str, str, int]],
        create: list[int],
        answers: dict[int, Job],
        aliases: dict[int, int],
    ) -> None:
        """Drafts whose unique key another job holds: answer the holder while it is active,
        else take the key over (compare-and-set) and create the draft after all.

        A holder that does not exist yet is an enqueue in flight (its key is taken before its
        job is written): wait for it, up to `UNIQUE_GRACE_MS`, then treat it as crashed.
        """
        in_batch = {drafts[i].id: i for i in [*create, *answers]}
        loop = asyncio.get_running_loop()
        while held:
            for i in [i for i, (holder, _, _) in held.items() if holder in in_batch]:
                aliases[i] = in_batch[held.pop(i)[0]]
            asked = [i for i, (_, queue, _) in held.items() if queue]
            if asked:
                with self._guard:
                    pipe = self.client.pipeline(transaction=False)
                    for i in asked:
                        holder, queue, _ = held[i]
                        pipe.hgetall(self._keys.job(queue, holder))
                    replies = await self._execute(pipe)
            holders = {
                i: decode_job(held[i][0], held[i][1], fields) if fields else None
                for i, fields in zip(asked, replies if asked else [], strict=True)
            }
            waiting = False
            for i, (holder, _, age) in list(held.items()):
                job = holders.get(i)
                if job is not None and job.status in ACTIVE_STATUSES:
                    del held[i]
                    answers[i] = job
                    continue
                if job is None and age < UNIQUE_GRACE_MS:
                    waiting = True
                    continue
                reply = await self._unique_swap(drafts[i].unique_key or "", holder, drafts[i].id)
                if reply[0] == 1:
                    del held[i]
                    create.append(i)
                    in_batch[drafts[i].id] = i
                else:
                    held[i] = (reply[1], reply[2], int(reply[3]))
            if waiting:
                started = loop.time()
                await asyncio.sleep(0.005)
                waited = round((loop.time() - started) * 1000)
                for i, (holder, queue, age) in list(held.items()):
                    held[i] = (holder, queue or (await self._queue_of(holder)) or "", age + waited)

    async def job_get(self, *, job_id: str) -> Job | None:
        queue = await self._queue_of(job_id)
        if queue is None:
            return None
        with self._guard:
            fields = await self.client.hgetall(self._keys.job(queue, job_id))
        return decode_job(job_id, queue, fields) if fields else None

    async def jobs_list(
        self, *, filter: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        queues = [filter.queue] if filter.queue is not None else await self._all_queues()
        args = [
            cursor or "",
            limit + 1,
            filter.status.value if filter.status else "",
            filter.task or "",
            to_us(filter.created_after) if filter.created_after else "",
            to_us(filter.created_before) if filter.created_before else "",
            filter.q.lower() if filter.q else "",
            self.search_budget,
        ]
        with self._guard:
            pipe = self.client.pipeline(transaction=False)
            for queue in queues:
                await self._job_script("list", queue, args, client=pipe)
            replies = await self._execute(pipe)
        # A search reads at most SEARCH_BUDGET jobs per queue: jobs below the highest id where
        # a queue stopped reading are not known yet, so the page ends there.
        stop = max((reply[1] for reply in replies if reply[1]), default="")
        jobs = [
            decode_job(job_id, queue, fields)
            for queue, reply in zip(queues, replies, strict=True)
            for job_id, fields in reply[0]
            if job_id >= stop
        ]
        jobs.sort(key=lambda j: j.id, reverse=True)
        page = jobs[:limit]
        if len(jobs) > limit and page:
            return JobPage(jobs=page, next_cursor=page[-1].id)
        return JobPage(jobs=page, next_cursor=stop or None)

    async def jobs_delete(self, *, ids: Sequence[str]) -> list[str]:
        by_queue: dict[str, list[str]] = defaultdict(list)
        for job_id in dict.fromkeys(ids):
            queue = await self._queue_of(job_id)
            if queue is not None:
                by_queue[queue].append(job_id)
        deleted: list[str] = []
        for queue, queue_ids in by_queue.items():
            for start in range(0, len(queue_ids), DELETE_BATCH):
                with self._guard:
                    gone = await self._job_script("delete", queue, queue_ids[start : start + DELETE_BATCH])
                    if gone:
                        await self.client.hdel(self._keys.ids, *gone)
                for job_id in gone:
                    self._queue_cache.pop(job_id, None)
                deleted += gone
        return deleted

    async def _answer(
        self,
        queue: str,
        job_id: str,
        reply: list[Any],
        refusal: Callable[[str, str], InvalidTransitionError],
    ) -> Job:
        """The job a cancel or retry script returned, or the error its refusal names."""
        if reply[0] == "NOTFOUND":
            raise JobNotFound(job_id)
        if reply[0] == "INVALID":
            raise refusal(job_id, reply[1])
        if reply[0] == "PARENT":
            raise InvalidTransitionError.parent_step_failed(job_id, reply[2] or None, reply[1])
        return decode_job(job_id, queue, reply[1])

    async def job_cancel(self, *, job_id: str, now: datetime | None = None) -> Job:
        now = now or utcnow()
        queue = await self._queue_of(job_id)
        if queue is None:
            raise JobNotFound(job_id)
        with self._guard:
            reply = await self._job_script("cancel", queue, [to_us(now), job_id])
        return await self._answer(queue, job_id, reply, InvalidTransitionError.not_cancellable)

    async def job_retry(self, *, job_id: str, now: datetime | None = None) -> Job:
        now = now or utcnow()
        queue = await self._queue_of(job_id)
        if queue is None:
            raise JobNotFound(job_id)
        with self._guard:
            status, key = await self.client.hmget(self._keys.job(queue, job_id), "s", "u")
        if key and status in ("failed", "cancelled"):
            holder = await self._take_unique(key, job_id)
            if holder is not None:
                raise InvalidTransitionError.unique_key_held(job_id, key, holder)
        with self._guard:
            reply = await self._job_script("retry", queue, [to_us(now), job_id])
        return await self._answer(queue, job_id, reply, InvalidTransitionError.not_retryable)

    async def _take_unique(self, key: str, job_id: str) -> str | None:
        """Give `key` to `job_id` unless another active job holds it; returns that job's id.

        Used before a manual retry; the retry script runs next, so a crash in between leaves
        the key with a finished job, which the next enqueue treats as free.
        """
        expected = ""
        for _ in range(10):
            reply = await self._unique_swap(key, expected, job_id)
            if reply[0] == 1:
                return None
            holder, queue = reply[1], reply[2]
            if queue:
                with self._guard:
                    status = await self.client.hget(self._keys.job(queue, holder), "s")
                if status in ("scheduled", "pending", "running"):
                    return str(holder)
            expected = holder
        return str(expected)

    async def jobs_retry_failed(
        self, *, queue: str | None = None, now: datetime | None = None
    ) -> int:
        now = now or utcnow()
        queues = [queue] if queue is not None else await self._all_queues()
        retried = 0
        for name in queues:
            with self._guard:
                ids = await self.client.zrange(self._keys.queue_key(name, "done:failed"), 0, -1)
                if not ids:
                    continue
                pipe = self.client.pipeline(transaction=False)
                for job_id in ids:
                    pipe.hget(self._keys.job(name, job_id), "u")
                keys = await self._execute(pipe)
            chosen = []
            taken: set[str] = set()
            for job_id, key in sorted(zip(ids, keys, strict=True)):
                # A job whose unique key another active job holds stays failed.
                if key and (key in taken or await self._take_unique(key, job_id) is not None):
                    continue
                if key:
                    taken.add(key)
                chosen.append(job_id)
            with self._guard:
                reply = await self._job_script("retry", name, [to_us(now), "", dumps(chosen)])
            retried += int(reply[1])
        return retried
