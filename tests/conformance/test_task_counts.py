"""Active jobs per (queue, task): what the unclaimable-task listing and alert are built on."""

from __future__ import annotations

from taskyard.backends.protocol import Backend
from taskyard.core.coverage import TaskCounts

from .factory import T0, at, claim_one, draft, enqueue


async def test_nothing_active_counts_nothing(backend: Backend) -> None:
    assert await backend.task_counts(now=T0) == []


async def test_counts_per_queue_and_task_with_the_oldest_due_run_at(backend: Backend) -> None:
    await backend.job_enqueue_many(
        drafts=[
            draft(seq=0, task="a", queue="q1", run_at=at(-50)),
            draft(seq=1, task="a", queue="q1", run_at=at(-45)),
            draft(seq=2, task="a", queue="q2"),
            draft(seq=3, task="b", queue="q1", run_at=at(60)),  # scheduled, not due
            draft(seq=4, task="b", queue="q1", run_at=at(5)),  # scheduled, due at at(10)
            draft(seq=5, task="c", queue="q1", priority=9),
        ],
        now=at(-40),
    )
    running = await claim_one(backend, queues=["q1"], now=at(-40))
    assert running.task == "c"
    done = await enqueue(backend, seq=6, task="d", queue="q1", now=at(-40))
    await backend.job_cancel(job_id=done.id, now=at(-40))
    assert await backend.task_counts(now=at(10)) == [
        TaskCounts(queue="q1", task="a", pending=2, waiting_since=at(-50)),
        TaskCounts(queue="q1", task="b", scheduled=2, waiting_since=at(5)),
        TaskCounts(queue="q1", task="c", running=1),
        TaskCounts(queue="q2", task="a", pending=1, waiting_since=at(-40)),
    ]
    assert (await backend.task_counts(now=at(0)))[1] == TaskCounts(
        queue="q1", task="b", scheduled=2, waiting_since=None
    )
