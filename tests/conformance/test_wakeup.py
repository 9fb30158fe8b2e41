"""`wait_for_jobs`: returns early when work may have appeared (enqueue, resume, release)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from taskyard.backends.protocol import Backend
from taskyard.core.settle import Settle

from .factory import T0, draft, enqueue, run_one, settle

DEADLINE = 10.0
POKE_EVERY = 0.2


async def _wakes(backend: Backend, poke: Callable[[int], Awaitable[object]]) -> None:
    """A waiter with a long timeout is released by `poke`; pokes again until the deadline
    in case the first one landed before the waiter was registered (allowed to be missed)."""
    waiter = asyncio.create_task(backend.wait_for_jobs(queues=None, timeout=60.0))
    await asyncio.sleep(0)  # let the waiter start (a yield, not a timed wait)
    deadline = time.monotonic() + DEADLINE
    attempt = 0
    try:
        while not waiter.done():
            assert time.monotonic() < deadline, "wait_for_jobs was not woken"
            await poke(attempt)
            attempt += 1
            await asyncio.wait((waiter,), timeout=POKE_EVERY)
    finally:
        waiter.cancel()


async def test_wait_times_out(backend: Backend) -> None:
    await asyncio.wait_for(backend.wait_for_jobs(queues=["q"], timeout=0.01), timeout=DEADLINE)


async def test_enqueue_wakes(backend: Backend) -> None:
    await _wakes(backend, lambda i: enqueue(backend, seq=i))


async def test_bulk_enqueue_wakes_waiter_on_a_queue(backend: Backend) -> None:
    waiter = asyncio.create_task(backend.wait_for_jobs(queues=["q"], timeout=60.0))
    await asyncio.sleep(0)
    try:
        for i in range(int(DEADLINE / POKE_EVERY)):
            await backend.job_enqueue_many(
                drafts=[draft(seq=2 * i, queue="q"), draft(seq=2 * i + 1, queue="q")], now=T0
            )
            await asyncio.wait((waiter,), timeout=POKE_EVERY)
            if waiter.done():
                break
        assert waiter.done()
    finally:
        waiter.cancel()


async def test_resume_wakes(backend: Backend) -> None:
    await backend.queue_update(queue="q", paused=True)

    async def poke(i: int) -> object:
        await backend.queue_update(queue="q", paused=True)
        return await backend.queue_update(queue="q", paused=False)

    await _wakes(backend, poke)


async def test_release_wakes(backend: Backend) -> None:
    async def poke(i: int) -> None:
        job = await run_one(backend, seq=i)
        await settle(backend, Settle.released(job.id, job.lease_token), now=T0)
        await backend.job_cancel(job_id=job.id, now=T0)

    await _wakes(backend, poke)
