"""taskiq on Redis streams (taskiq-redis, db 15): the no-op task, and the benchmark round."""

from __future__ import annotations

import asyncio
import sys
import time

import harness
import redis
from taskiq_redis import RedisStreamBroker

URL = "redis://127.0.0.1:6379/15"
QUEUE = "bench"

# consumer_id "0": the group reads the stream from its start, so jobs queued before a
# worker's first start are run too (the default "$" would skip the drain backlog).
broker = RedisStreamBroker(URL, queue_name=QUEUE, consumer_id="0", xread_count=100)


@broker.task(task_name="noop")
async def noop(sent_at: float | None = None) -> None:
    """Do nothing but tell the probe."""
    harness.hit(sent_at)


class TaskiqSystem(harness.System):
    """taskiq 0.13 with taskiq-redis's RedisStreamBroker (XREADGROUP, acks), no result backend."""

    name = "taskiq"
    configs = {
        "one": "1 worker process (--workers 1), --max-async-tasks 100, xread_count 100, "
               "ack when saved (the default)",
        "best": "2 worker processes (--workers 2), otherwise the same",
    }

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(URL)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(broker.startup())

    def reset(self) -> None:
        self.redis.flushdb()  # db 15 belongs to this benchmark

    def enqueue_single(self, n: int) -> float:
        async def go() -> None:
            for _ in range(n):
                await noop.kiq()

        start = time.perf_counter()
        self.loop.run_until_complete(go())
        return time.perf_counter() - start

    def enqueue_bulk(self, n: int) -> float:
        # taskiq has no bulk enqueue; concurrent kicks on the broker's pool are its fastest path.
        async def go() -> None:
            for offset in range(0, n, 50):
                await asyncio.gather(*(noop.kiq() for _ in range(min(50, n - offset))))

        start = time.perf_counter()
        self.loop.run_until_complete(go())
        return time.perf_counter() - start

    def send(self, sent_at: float | None) -> None:
        self.loop.run_until_complete(noop.kiq(sent_at))

    def store_bytes(self) -> int | None:
        return harness.redis_store_bytes(URL)

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        workers = "1" if config == "one" else "2"
        return [[sys.executable, "-m", "taskiq", "worker", "peer_taskiq:broker", "--workers",
                 workers, "--max-async-tasks", "100", "--log-level", "WARNING"]]

    def close(self) -> None:
        self.loop.run_until_complete(broker.shutdown())
        self.loop.close()
        self.redis.close()


if __name__ == "__main__":
    harness.main_for(TaskiqSystem)
