"""huey on Redis (db 14): the no-op task, and the benchmark round when run as a script."""

from __future__ import annotations

import sys
import time

import harness
from huey import RedisHuey

URL = "redis://127.0.0.1:6379/14"

# Blocking reads (BRPOP) are RedisHuey's default: an idle worker wakes on the push, no polling.
huey = RedisHuey("bench", url=URL, results=False, blocking=True)


@huey.task(retries=0)
def noop(sent_at: float | None = None) -> None:
    """Do nothing but tell the probe."""
    harness.hit(sent_at)


class HueySystem(harness.System):
    """huey 3 with RedisHuey (a list, BRPOP), no result store."""

    name = "huey"
    configs = {
        "one": "1 consumer process x 4 threads (-k thread -w 4), no periodic, no health check",
        "best": "2 consumer processes x 4 threads each",
    }

    def reset(self) -> None:
        huey.storage.conn.flushdb()  # db 14 belongs to this benchmark

    def enqueue_single(self, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            noop()
        return time.perf_counter() - start

    def enqueue_bulk(self, n: int) -> float:
        # huey's `map` enqueues one by one too: it has no bulk write.
        start = time.perf_counter()
        noop.map([None] * n)
        return time.perf_counter() - start

    def send(self, sent_at: float | None) -> None:
        noop(sent_at)

    def store_bytes(self) -> int | None:
        return harness.redis_store_bytes(URL)

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        count = 1 if config == "one" else 2
        cmd = [sys.executable, "-m", "huey.bin.huey_consumer", "peer_huey.huey", "-k", "thread",
               "-w", "4", "-n", "-C", "-q"]
        return [cmd] * count

    def close(self) -> None:
        huey.storage.conn.close()


if __name__ == "__main__":
    # huey names a task by its module: enqueue through `peer_huey`, the module the consumer
    # imports, not through `__main__`.
    import peer_huey

    harness.main_for(peer_huey.HueySystem)
