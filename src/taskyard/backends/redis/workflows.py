"""Workflows on Redis: enqueue a whole graph, read, list, cancel and resume it, each one
script over the workflow's home queue (its first step's queue), whose hash slot holds the
workflow's keys (`keys.py`). The rules that move steps along run inside the settle, cancel,
retry and rescue scripts (`scripts/_graph.lua`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from taskyard.backends.redis.codec import decode_job, dumps, encode_draft, from_us, new_job, to_us
from taskyard.backends.redis.connection import RedisConnection
from taskyard.clock import utcnow
from taskyard.core.workflow import (
    Edge,
    EdgeState,
    Policy,
    Workflow,
    WorkflowDraft,
    WorkflowHeader,
    WorkflowPage,
)
from taskyard.errors import ConfigError, WorkflowNotFound

__all__ = ("PRUNE_SCAN", "WorkflowsMixin")

#: Listed workflows one `workflows_prune` call reads at most (oldest first).
PRUNE_SCAN = 5000


def _pairs(flat: list[Any]) -> dict[str, str]:
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def _decode(workflow_id: str, reply: list[Any]) -> Workflow:
    """A `Workflow` from `wf_snapshot`'s reply (scripts/_graph.lua)."""
    header_fields, steps, edge_fields = reply
    h = _pairs(header_fields)
    header = WorkflowHeader(
        workflow_id, h["n"], from_us(h["c"]), from_us(h["x"]) if h.get("x") else None
    )
    jobs = tuple(decode_job(job_id, queue, fields) for job_id, queue, fields in steps)
    edges = []
    for pair, value in _pairs(edge_fields).items():
        parent, child = pair.split(" ", 1)
        policy, state = value.split(":", 1)
        edges.append(Edge(parent, child, Policy(policy), EdgeState(state)))
    # By child, then by parent, both in step order (as the memory backend lists them).
    rank = {job_id: i for i, (job_id, _, _) in enumerate(steps)}
    edges.sort(key=lambda e: (rank.get(e.child, -1), rank.get(e.parent, -1)))
    return Workflow(header, jobs, tuple(edges))


class WorkflowsMixin(RedisConnection):
    """Workflows as clients see them."""

    async def workflow_enqueue(self, *, workflow: WorkflowDraft, now: datetime | None = None) -> Workflow:
        now = now or utcnow()
        home = workflow.steps[0].queue
        queues = sorted({d.queue for d in workflow.steps})
        if self.is_cluster and len(queues) > 1:
            raise ConfigError(
                f"workflow {workflow.name!r} has steps in queues {', '.join(map(repr, queues))}: "
                "on a Redis Cluster every step of a workflow must be in one queue (one hash "
                "slot keeps the workflow's writes atomic; see docs/redis.md)"
            )
        parents = Counter(e.child for e in workflow.edges)
        rows = []
        for d in workflow.steps:
            status, _, score, fields = encode_draft(d, now, blocked=d.id in parents, home=home)
            if d.id in parents:
                fields += ["wo", str(parents[d.id])]
            rows.append([d.id, d.queue, status.value, str(score), *fields])
        args: list[Any] = [
            to_us(now),
            workflow.id,
            workflow.name,
            dumps(rows),
            dumps([[e.parent, e.child, e.policy.value] for e in workflow.edges]),
        ]
        k = self._keys
        if self.is_cluster:
            home = await self._reserve_workflow(workflow, home)
        else:
            args += [k.ids, k.queues, k.workflows, k.workflows_index]
        with self._guard:
            if self.options.durable_replicas:
                reply = await self._durable_job_script("wf_store", home, args)
            else:
                reply = await self._job_script("wf_store", home, args)
        for d in workflow.steps:
            self._remember(d.id, d.queue)
        for queue in queues:
            self._saw_queue(queue)
        if reply == "exists":
            stored = await self.workflow_get(workflow_id=workflow.id)
            assert stored is not None
            return stored
        blocked = workflow.blocked_ids
        header = WorkflowHeader(workflow.id, workflow.name, from_us(to_us(now)))
        steps = tuple(new_job(d, now, blocked=d.id in blocked) for d in workflow.steps)
        rank = {d.id: i for i, d in enumerate(workflow.steps)}
        edges = sorted(workflow.edges, key=lambda e: (rank[e.child], rank[e.parent]))
        return Workflow(header, steps, tuple(edges))

    async def _reserve_workflow(self, workflow: WorkflowDraft, home: str) -> str:
        """On a Redis Cluster, the `{g}` slot's part first: the steps' directory entries, the
        workflow's home queue and its place in the listing (idempotent; a listed workflow
        whose script never ran has no header and is skipped). Returns the stored home queue."""
        await self._reserve([(d.id, d.queue, "") for d in workflow.steps])
        k = self._keys
        with self._guard:
            pipe = self.client.pipeline(transaction=False)
            pipe.hsetnx(k.workflows, workflow.id, home)
            pipe.zadd(k.workflows_index, {workflow.id: 0})
            pipe.hget(k.workflows, workflow.id)
            replies = await self._execute(pipe)
        return str(replies[2])

    async def _homes(self, workflow_ids: list[str]) -> list[str | None]:
        with self._guard:
            homes: list[str | None] = await self.client.hmget(self._keys.workflows, workflow_ids)
        return homes

    async def workflow_get(self, *, workflow_id: str) -> Workflow | None:
        (home,) = await self._homes([workflow_id])
        if home is None:
            return None
        with self._guard:
            reply = await self._job_script("wf_read", home, [workflow_id])
        return _decode(workflow_id, reply) if reply else None

    async def workflows_list(self, *, limit: int = 50, cursor: str | None = None) -> WorkflowPage:
        with self._guard:
            ids: list[str] = await self.client.zrevrangebylex(
                self._keys.workflows_index, f"({cursor}" if cursor else "+", "-", start=0, num=limit + 1
            )
        page_ids = ids[:limit]
        if not page_ids:
            return WorkflowPage((), None)
        homes = await self._homes(page_ids)
        found = [(i, h) for i, h in zip(page_ids, homes, strict=True) if h is not None]
        with self._guard:
            pipe = self.client.pipeline(transaction=False)
            for workflow_id, home in found:
                await self._job_script("wf_read", home, [workflow_id], client=pipe)
            replies = await self._execute(pipe) if found else []
        # An id listed whose header is missing (a cluster enqueue cut short) is skipped.
        workflows = [_decode(i, r) for (i, _), r in zip(found, replies, strict=True) if r]
        return WorkflowPage(tuple(workflows), page_ids[-1] if len(ids) > limit else None)

    async def _act(self, name: str, workflow_id: str, now: datetime | None) -> Workflow:
        (home,) = await self._homes([workflow_id])
        reply = None
        if home is not None:
            with self._guard:
                reply = await self._job_script(name, home, [to_us(now or utcnow()), workflow_id])
        if not reply:
            raise WorkflowNotFound(workflow_id)
        return _decode(workflow_id, reply)

    async def workflows_prune(self, *, finished_before: datetime, limit: int = 1000) -> int:
        """Oldest first (the listing index sorts by id, ids by creation time): each workflow
        is checked and deleted by one script in its home slot (`wf_delete`), then its entries
        in the `{g}` directory. A call reads at most `PRUNE_SCAN` listed workflows: old ones
        still running are passed over, and looked at again on the next call."""
        cut = to_us(finished_before)
        k = self._keys
        deleted = scanned = 0
        after = "-"
        while deleted < limit and scanned < PRUNE_SCAN:
            with self._guard:
                ids: list[str] = await self.client.zrangebylex(k.workflows_index, after, "+", start=0, num=200)
            if not ids:
                break
            scanned += len(ids)
            after = f"({ids[-1]}"
            for workflow_id, home in zip(ids, await self._homes(ids), strict=True):
                if home is None or deleted >= limit:
                    continue
                with self._guard:
                    gone = await self._job_script("wf_delete", home, [cut, workflow_id])
                    if gone is None or gone is False:
                        continue
                    if gone:
                        await self.client.hdel(k.ids, *gone)
                    await self.client.hdel(k.workflows, workflow_id)
                    await self.client.zrem(k.workflows_index, workflow_id)
                for job_id in gone:
                    self._queue_cache.pop(job_id, None)
                deleted += 1
        return deleted

    async def workflow_cancel(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        return await self._act("wf_cancel", workflow_id, now)

    async def workflow_retry(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        return await self._act("wf_retry", workflow_id, now)
