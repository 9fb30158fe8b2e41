"""Celery on Redis (db 10): the no-op task, and the benchmark round when run as a script."""

from __future__ import annotations

import sys
import time

import harness
import redis
from celery import Celery

BROKER = "redis://127.0.0.1:6379/10"

app = Celery("peer_celery", broker=BROKER)
app.conf.update(
    task_ignore_result=True,  # no result backend: the benchmark reads nothing back
    worker_prefetch_multiplier=32,
    broker_connection_retry_on_startup=True,
    task_default_queue="bench",
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(sent_at: float | None = None) -> None:
    """Do nothing but tell the probe."""
    harness.hit(sent_at)


class CelerySystem(harness.System):
    """Celery 5 with the Redis transport."""

    name = "celery"
    configs = {
        "one": "1 process, -P solo, prefetch 32",
        "best": "2 processes, -P solo, prefetch 32",
    }

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(BROKER)

    def reset(self) -> None:
        self.redis.flushdb()  # db 10 belongs to this benchmark

    def enqueue_single(self, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            noop.apply_async()
        return time.perf_counter() - start

    def enqueue_bulk(self, n: int) -> float:
        # Celery has no bulk enqueue; one shared producer connection is its fastest path.
        start = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                noop.apply_async(producer=producer)
        return time.perf_counter() - start

    def send(self, sent_at: float | None) -> None:
        noop.apply_async(kwargs={"sent_at": sent_at})

    def store_bytes(self) -> int | None:
        return harness.redis_store_bytes(BROKER)

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        base = [sys.executable, "-m", "celery", "-A", "peer_celery", "worker", "-Q", "bench",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"]
        if config == "one":
            return [[*base, "-P", "solo"]]
        # Measured here: two solo workers beat one prefork worker with two children.
        return [[*base, "-P", "solo", "-n", f"bench{i}@%h"] for i in range(2)]

    def close(self) -> None:
        self.redis.close()


if __name__ == "__main__":
    harness.main_for(CelerySystem)
