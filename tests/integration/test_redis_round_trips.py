"""Redis round-trips: an enqueue is one script call, pipelines run their scripts without a
SCRIPT EXISTS check (and recover when the server forgot them), and the two-step enqueue that
a Redis Cluster client would use keeps the same semantics.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend
from taskyard.core.ids import new_id
from taskyard.core.job import JobDraft, JobFilter, JobStatus
from taskyard.core.settle import Settle
from tests.support.redis import isolated_url, owned_server, with_prefix


@contextlib.asynccontextmanager
async def opened(url: str, *, single_node: bool = True) -> AsyncIterator[Any]:
    backend: Any = backend_from_url(url)
    backend.single_node = single_node
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def draft(queue: str = "q", **kw: Any) -> JobDraft:
    return JobDraft(id=kw.pop("id", None) or new_id(), task="t", queue=queue, payload={}, **kw)


async def _calls(admin: aioredis.Redis) -> dict[str, int]:
    stats = await admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


async def test_enqueue_and_a_batch_completion_are_one_command_each() -> None:
    async with owned_server() as server:
        admin = aioredis.Redis.from_url(server.url)
        try:
            async with opened(with_prefix(server.url, "ty:rt:")) as backend:
                # Warm up: the first calls load the scripts.
                await backend.job_enqueue_many(drafts=[draft()])
                claimed = await backend.job_claim(queues=["q"], limit=1, worker_id="w", lease=60)
                await backend.jobs_settle(outcomes=[Settle.completed(claimed[0].id, "x")])

                await admin.config_resetstat()
                await backend.job_enqueue_many(drafts=[draft()])
                calls = await _calls(admin)
                assert calls.get("evalsha") == 1
                assert "script|exists" not in calls and "script" not in calls

                claimed = await backend.job_claim(queues=["q"], limit=1, worker_id="w", lease=60)
                await admin.config_resetstat()
                answers = await backend.jobs_settle(
                    outcomes=[Settle.completed(claimed[0].id, claimed[0].lease_token or "")],
                )
                lost = [x.job_id for x in answers if not x.owned]
                assert lost == []
                calls = await _calls(admin)
                assert calls.get("evalsha") == 1
                assert "script|exists" not in calls and "script" not in calls
        finally:
            await admin.aclose()


async def test_a_batch_with_contended_unique_keys_is_one_script_call() -> None:
    # Held keys are settled inside the script, so a cut connection can never leave part of a
    # batch stored (the chaos suite's redis scale-out net-cut found that once).
    async with owned_server() as server:
        admin = aioredis.Redis.from_url(server.url)
        try:
            async with opened(with_prefix(server.url, "ty:rt:")) as backend:
                active, done = await backend.job_enqueue_many(
                    drafts=[draft("a", unique_key="held"), draft("a", unique_key="free")]
                )
                await backend.job_cancel(job_id=done.id)
                await admin.config_resetstat()
                batch = [
                    draft("b", unique_key="held"),
                    draft("b", unique_key="free"),
                    draft("b", unique_key="new"),
                    draft("b", unique_key="new"),
                    draft("b"),
                ]
                answers = await backend.job_enqueue_many(drafts=batch)
                calls = await _calls(admin)
                assert calls.get("evalsha") == 1  # (the commands the script ran count too)
                # The active holder answers; the finished one's key is taken over; a key twice
                # in the batch is one job.
                assert answers[0] == active
                assert answers[1].id == batch[1].id and answers[1].status is JobStatus.PENDING
                assert answers[2].id == batch[2].id and answers[3] == answers[2]
                assert answers[4].id == batch[4].id
                # The drafts that were answered by another job leave nothing behind.
                assert await backend.job_get(job_id=batch[0].id) is None
                assert await backend.job_get(job_id=batch[3].id) is None
                assert await admin.hget("ty:rt:{g}:ids", batch[0].id) is None
                assert await admin.hget("ty:rt:{g}:ids", batch[1].id) == b"b"
                page = await backend.jobs_list(filter=JobFilter(queue="b"))
                assert {j.id for j in page.jobs} == {batch[1].id, batch[2].id, batch[4].id}
        finally:
            await admin.aclose()


async def test_pipelines_reload_scripts_the_server_forgot() -> None:
    async with owned_server() as server:
        admin = aioredis.Redis.from_url(server.url)
        try:
            async with opened(with_prefix(server.url, "ty:rt:")) as backend:
                jobs = await backend.job_enqueue_many(drafts=[draft("a"), draft("b")])
                await admin.script_flush()
                # Two queues: promote scripts and reads share one pipeline.
                claimed = await backend.job_claim(
                    queues=["a", "b"], limit=2, worker_id="w", lease=60
                )
                assert {j.id for j in claimed} == {j.id for j in jobs}
                await admin.script_flush()
                answers = await backend.jobs_settle(
                    outcomes=[Settle.completed(j.id, j.lease_token or "") for j in claimed],
                )
                lost = [x.job_id for x in answers if not x.owned]
                assert lost == []
                await admin.script_flush()
                page = await backend.jobs_list(filter=JobFilter(status=JobStatus.COMPLETED))
                assert {j.id for j in page.jobs} == {j.id for j in jobs}
                # A unique key taken over from a finished holder, with scripts forgotten.
                await admin.script_flush()
                first = (await backend.job_enqueue_many(drafts=[draft("a", unique_key="k")]))[0]
                await backend.job_cancel(job_id=first.id)
                await admin.script_flush()
                second = (await backend.job_enqueue_many(drafts=[draft("b", unique_key="k")]))[0]
                assert second.id != first.id and second.status is JobStatus.PENDING
                assert await backend.job_get(job_id=second.id) == second
        finally:
            await admin.aclose()


async def test_lone_calls_reload_forgotten_scripts_and_replace_a_broken_connection() -> None:
    # A lone enqueue or claim runs on the backend's own connection rather than the pool's.
    async with owned_server() as server:
        admin = aioredis.Redis.from_url(server.url)
        try:
            async with opened(with_prefix(server.url, "ty:rt:")) as backend:
                first = (await backend.job_enqueue_many(drafts=[draft()]))[0]
                await admin.script_flush()
                second = (await backend.job_enqueue_many(drafts=[draft()]))[0]
                await admin.script_flush()
                claimed = await backend.job_claim(queues=["q"], limit=2, worker_id="w", lease=60)
                assert [j.id for j in claimed] == [first.id, second.id]
                # Every connection of the backend dies (as in a server restart): the next
                # lone call replaces its connection once and succeeds.
                await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                third = (await backend.job_enqueue_many(drafts=[draft()]))[0]
                assert await backend.job_get(job_id=third.id) == third
                await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                again = await backend.job_claim(queues=["q"], limit=2, worker_id="w", lease=60)
                assert [j.id for j in again] == [third.id]
        finally:
            await admin.aclose()


@pytest.fixture(params=[True, False], ids=["one-script", "two-step"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async with isolated_url() as url, opened(url, single_node=request.param) as value:
        yield value


async def test_an_id_is_stored_once_across_queues(backend: Backend) -> None:
    job_id = new_id()
    first = (await backend.job_enqueue_many(drafts=[draft("a", id=job_id)]))[0]
    again = await backend.job_enqueue_many(drafts=[draft("b", id=job_id), draft("a", id=job_id)])
    assert [j.queue for j in again] == ["a", "a"]
    assert again[0] == again[1] == await backend.job_get(job_id=job_id) == first
    page = await backend.jobs_list(filter=JobFilter(queue="b"))
    assert page.jobs == []


async def test_unique_keys_within_and_across_batches(backend: Backend) -> None:
    a, b, c = draft("a", unique_key="k"), draft("b", unique_key="k"), draft("b")
    jobs = await backend.job_enqueue_many(drafts=[a, b, c])
    assert [j.id for j in jobs] == [a.id, a.id, c.id]
    held = (await backend.job_enqueue_many(drafts=[draft("c", unique_key="k")]))[0]
    assert held.id == a.id
    await backend.job_cancel(job_id=a.id)
    fresh = draft("c", unique_key="k")
    assert (await backend.job_enqueue_many(drafts=[fresh]))[0].id == fresh.id
    assert (await backend.job_get(job_id=fresh.id)) is not None


async def test_a_claim_filtered_by_task_is_one_command() -> None:
    async with owned_server() as server:
        admin = aioredis.Redis.from_url(server.url)
        try:
            async with opened(with_prefix(server.url, "ty:rt:")) as backend:
                await backend.job_enqueue_many(drafts=[draft()])
                await backend.job_claim(queues=["q"], limit=1, worker_id="w", lease=60, tasks=["t"])
                other = JobDraft(id=new_id(), task="other", queue="q", payload={}, priority=5)
                await backend.job_enqueue_many(drafts=[other, draft(), draft()])
                await admin.config_resetstat()
                claimed = await backend.job_claim(
                    queues=["q"], limit=5, worker_id="w", lease=60, tasks=["t", "u"]
                )
                assert [j.task for j in claimed] == ["t", "t"]
                calls = await _calls(admin)
                assert calls.get("evalsha") == 1
                assert "script|exists" not in calls and "script" not in calls
        finally:
            await admin.aclose()
