"""What a queued job costs in Redis, measured on our own keys (MEMORY USAGE, so other users
of the shared server do not disturb it); docs/redis.md reports the figure.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from taskyard.backends import backend_from_url
from taskyard.core.ids import new_id
from taskyard.core.job import JobDraft
from tests.support.redis import isolated_url
from tests.support.servers import REDIS_URL

N = 2000


async def test_a_small_pending_job_costs_well_under_a_kilobyte() -> None:
    async with isolated_url() as url:
        backend = backend_from_url(url)
        await backend.open()
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            drafts = [
                JobDraft(id=new_id(), task="bench.noop", queue="default", payload={"i": i})
                for i in range(N)
            ]
            for start in range(0, N, 500):
                await backend.job_enqueue_many(drafts=drafts[start : start + 500])
            total = 0
            async for key in client.scan_iter(match=backend.prefix + "*", count=1000):  # type: ignore[attr-defined]
                total += await client.memory_usage(key, samples=0) or 0
        finally:
            await client.aclose()
            await backend.close()
    per_job = total / N
    print(f"redis bytes per pending job (own keys, MEMORY USAGE): {per_job:.0f}")
    assert per_job < 1024
