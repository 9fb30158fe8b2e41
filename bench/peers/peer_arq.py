"""arq on Redis (db 13): the no-op coroutine, and the benchmark round when run as a script."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import harness
from arq import create_pool
from arq.connections import RedisSettings

URL = "redis://127.0.0.1:6379/13"
SETTINGS = RedisSettings(host="127.0.0.1", port=6379, database=13)
QUEUE = "bench"


async def noop(ctx: dict[str, Any], sent_at: float | None = None) -> None:
    """Do nothing but tell the probe."""
    harness.hit(sent_at)


class WorkerSettings:
    """Read by `arq peer_arq.WorkerSettings`."""

    functions = [noop]
    redis_settings = SETTINGS
    queue_name = QUEUE
    max_jobs = 50
    keep_result = 0
    poll_delay = 0.005  # arq polls; its 0.5 s default would dominate the latency figure
    handle_signals = True


class ArqSystem(harness.System):
    """arq 0.25 (asyncio)."""

    name = "arq"
    configs = {
        "one": "1 process, max_jobs=50, poll_delay=5 ms",
        "best": "2 processes, max_jobs=50, poll_delay=5 ms",
    }

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(create_pool(SETTINGS, default_queue_name=QUEUE))

    def reset(self) -> None:
        self.loop.run_until_complete(self.pool.flushdb())  # db 13 belongs to this benchmark

    def enqueue_single(self, n: int) -> float:
        async def go() -> None:
            for _ in range(n):
                await self.pool.enqueue_job("noop")

        start = time.perf_counter()
        self.loop.run_until_complete(go())
        return time.perf_counter() - start

    def enqueue_bulk(self, n: int) -> float:
        # arq has no bulk enqueue; concurrent enqueues on the pool are its fastest path.
        async def go() -> None:
            for offset in range(0, n, 50):  # the pool caps concurrent connections
                await asyncio.gather(*(self.pool.enqueue_job("noop")
                                       for _ in range(min(50, n - offset))))

        start = time.perf_counter()
        self.loop.run_until_complete(go())
        return time.perf_counter() - start

    def send(self, sent_at: float | None) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("noop", sent_at))

    def store_bytes(self) -> int | None:
        return harness.redis_store_bytes(URL)

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        count = 1 if config == "one" else 2
        # run_worker without arq's CLI log config: no INFO line per job, like the other peers.
        code = "import arq, peer_arq; arq.run_worker(peer_arq.WorkerSettings)"
        return [[sys.executable, "-c", code] for _ in range(count)]

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()


if __name__ == "__main__":
    harness.main_for(ArqSystem)
