"""RQ on Redis (db 11): the no-op job, and the benchmark round when run as a script."""

from __future__ import annotations

import sys
import time

import harness
import redis
from rq import Queue

URL = "redis://127.0.0.1:6379/11"


def noop(sent_at: float | None = None) -> None:
    """Do nothing but tell the probe."""
    harness.hit(sent_at)


class RqSystem(harness.System):
    """RQ with SimpleWorker (no fork per job), results kept 0 s."""

    name = "rq"
    configs = {
        "one": "1 SimpleWorker process, result_ttl=0",
        "best": "2 SimpleWorker processes, result_ttl=0",
    }

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(URL)
        self.queue = Queue("bench", connection=self.redis, result_ttl=0)

    def reset(self) -> None:
        self.redis.flushdb()  # db 11 belongs to this benchmark

    def enqueue_single(self, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            self.queue.enqueue("peer_rq.noop", result_ttl=0)
        return time.perf_counter() - start

    def enqueue_bulk(self, n: int) -> float:
        start = time.perf_counter()
        for offset in range(0, n, 1000):  # enqueue_many on one pipeline, 1,000 a call
            batch = [Queue.prepare_data("peer_rq.noop", result_ttl=0)
                     for _ in range(min(1000, n - offset))]
            with self.redis.pipeline() as pipe:
                self.queue.enqueue_many(batch, pipeline=pipe)
                pipe.execute()
        return time.perf_counter() - start

    def send(self, sent_at: float | None) -> None:
        self.queue.enqueue("peer_rq.noop", kwargs={"sent_at": sent_at}, result_ttl=0)

    def store_bytes(self) -> int | None:
        return harness.redis_store_bytes(URL)

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        cmd = [sys.executable, "-m", "rq.cli", "worker", "-w", "rq.worker.SimpleWorker",
               "-u", URL, "-q", "bench"]
        count = 1 if config == "one" else 2
        return [[*cmd[:-1], "-n", f"bench{i}-{time.time_ns()}", "bench"] for i in range(count)]

    def close(self) -> None:
        self.redis.close()


if __name__ == "__main__":
    harness.main_for(RqSystem)
