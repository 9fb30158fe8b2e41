"""Dramatiq on Redis (db 12): the no-op actor, and the benchmark round when run as a script."""

from __future__ import annotations

import sys
import time

import dramatiq
import harness
import redis
from dramatiq.brokers.redis import RedisBroker

URL = "redis://127.0.0.1:6379/12"

broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(sent_at: float | None = None) -> None:
    """Do nothing but tell the probe."""
    harness.hit(sent_at)


class DramatiqSystem(harness.System):
    """Dramatiq 2 with the Redis broker and its default middleware."""

    name = "dramatiq"
    configs = {
        "one": "1 process x 8 threads",
        "best": "2 processes x 8 threads",
    }

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(URL)

    def reset(self) -> None:
        self.redis.flushdb()  # db 12 belongs to this benchmark

    def enqueue_single(self, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            noop.send()
        return time.perf_counter() - start

    def enqueue_bulk(self, n: int) -> float:
        # Dramatiq has no bulk enqueue (a group sends its messages one by one).
        return self.enqueue_single(n)

    def send(self, sent_at: float | None) -> None:
        noop.send(sent_at)

    def store_bytes(self) -> int | None:
        return harness.redis_store_bytes(URL)

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        processes = "1" if config == "one" else "2"
        return [[sys.executable, "-m", "dramatiq", "peer_dramatiq", "--processes", processes,
                 "--threads", "8", "--queues", "bench"]]

    def close(self) -> None:
        self.redis.close()
        broker.close()


if __name__ == "__main__":
    harness.main_for(DramatiqSystem)
