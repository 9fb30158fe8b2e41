"""Workflows on Redis beyond the conformance suite: one queue per workflow on a Redis
Cluster, a listing that skips a workflow whose enqueue was cut short, and a fan-in whose
settles each touch a bounded number of keys (counters, not a read of every edge).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from taskyard.backends.redis.keys import Keys
from taskyard.core.ids import new_id, new_id_after
from taskyard.core.job import JobDraft, JobStatus
from taskyard.core.settle import Settle
from taskyard.core.workflow import Edge, WorkflowDraft
from taskyard.errors import ConfigError
from tests.support import redis_cluster
from tests.support.backends import opened_backend
from tests.support.redis import isolated_url, owned_server, with_prefix


def workflow(name: str, queues: list[str], *, fan_in: int = 0, wf_id: str | None = None) -> WorkflowDraft:
    """Steps `s0, s1, ...` one per queue (a chain), or a fan-in: `fan_in` roots then `join`."""
    wf_id = wf_id or new_id()
    made: list[str] = []

    def step_id() -> str:  # step ids sort in step order
        made.append(new_id_after(made[-1] if made else None))
        return made[-1]

    if fan_in:
        roots = [JobDraft(id=step_id(), task="t", queue=queues[0], payload={}, workflow_id=wf_id, step=f"r{i}")
                 for i in range(fan_in)]
        join = JobDraft(id=step_id(), task="t", queue=queues[0], payload={}, workflow_id=wf_id, step="join")
        return WorkflowDraft(wf_id, name, (*roots, join), tuple(Edge(r.id, join.id) for r in roots))
    steps = [JobDraft(id=step_id(), task="t", queue=q, payload={}, workflow_id=wf_id, step=f"s{i}")
             for i, q in enumerate(queues)]
    edges = tuple(Edge(a.id, b.id) for a, b in itertools.pairwise(steps))
    return WorkflowDraft(wf_id, name, tuple(steps), edges)


async def test_on_a_cluster_a_workflow_over_two_queues_is_refused_naming_them() -> None:
    async with redis_cluster.isolated_url() as url, opened_backend(url) as backend:
        draft = workflow("split", ["left", "right"])
        with pytest.raises(ConfigError, match=r"'left', 'right'.*must be in one queue"):
            await backend.workflow_enqueue(workflow=draft)
        assert await backend.workflow_get(workflow_id=draft.id) is None
        one = await backend.workflow_enqueue(workflow=workflow("whole", ["q", "q"]))
        assert [j.status for j in one.steps] == [JobStatus.PENDING, JobStatus.BLOCKED]


async def test_a_listed_workflow_without_a_header_is_skipped() -> None:
    # On a cluster the `{g}` slot's listing is written before the home queue's script; a
    # crash in between leaves an id listed with nothing stored.
    async with isolated_url() as url, opened_backend(url) as backend:
        ms = int(time.time() * 1000)
        first = await backend.workflow_enqueue(workflow=workflow("first", ["q"], wf_id=new_id(ms)))
        ghost = new_id(ms + 1)
        last = await backend.workflow_enqueue(workflow=workflow("last", ["q"], wf_id=new_id(ms + 2)))
        keys = Keys(backend.prefix)  # type: ignore[attr-defined]
        admin: Any = aioredis.Redis.from_url(url.split("?")[0])
        try:
            await admin.hset(keys.workflows, ghost, "q")
            await admin.zadd(keys.workflows_index, {ghost: 0})
        finally:
            await admin.aclose()
        assert await backend.workflow_get(workflow_id=ghost) is None
        page = await backend.workflows_list(limit=2)
        assert [w.id for w in page.workflows] == [last.id] and page.next_cursor == ghost
        rest = await backend.workflows_list(limit=2, cursor=page.next_cursor)
        assert [w.id for w in rest.workflows] == [first.id] and rest.next_cursor is None


async def _commands_run(admin: aioredis.Redis) -> int:
    stats = await admin.info("commandstats")
    return sum(int(s["calls"]) for name, s in stats.items() if name != "cmdstat_evalsha")


@pytest.mark.parametrize("parents", [10, 1000])
async def test_each_settle_of_a_fan_in_parent_runs_a_bounded_number_of_commands(parents: int) -> None:
    async with owned_server() as server:
        admin = aioredis.Redis.from_url(server.url)
        try:
            async with opened_backend(with_prefix(server.url, "ty:wf:")) as backend:
                draft = workflow("fan", ["q"], fan_in=parents)
                await backend.workflow_enqueue(workflow=draft)
                claimed = await backend.job_claim(queues=["q"], limit=parents, worker_id="w", lease=60)
                assert len(claimed) == parents
                costs = []
                for job in claimed[:5]:
                    await admin.config_resetstat()
                    await backend.jobs_settle(outcomes=[Settle.completed(job.id, job.lease_token or "")])
                    costs.append(await _commands_run(admin))
                join = await backend.job_get(job_id=draft.steps[-1].id)
                assert join is not None and join.status is JobStatus.BLOCKED
        finally:
            await admin.aclose()
        # The same handful of commands whatever the fan-in's width (never one per edge).
        assert max(costs) <= 25, costs
