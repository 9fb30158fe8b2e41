"""saq on Redis (db 0, queue `taskyard-bench-saq`, in its own venv: saq pins redis-py < 8)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import harness
from saq import Queue

URL = "redis://127.0.0.1:6379/0"
QUEUE = "taskyard-bench-saq"
#: Every key saq writes for this queue holds its name.
MATCH = f"saq:*{QUEUE}*"

queue = Queue.from_url(URL, name=QUEUE)


async def noop(ctx: dict[str, Any], *, sent_at: float | None = None) -> None:
    """Do nothing but tell the probe."""
    harness.hit(sent_at)


#: Read by `saq peer_saq.settings`.
settings = {
    "queue": queue,
    "functions": [noop],
    "concurrency": 50,
}


class SaqSystem(harness.System):
    """saq 0.26 with its Redis queue (BLMOVE wake-up), default job ttl."""

    name = "saq"
    configs = {
        "one": "1 process (--workers 1), concurrency 50",
        "best": "2 processes (--workers 2), concurrency 50 each",
    }

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(queue.connect())

    def reset(self) -> None:
        harness.redis_delete(URL, MATCH)  # only this queue's keys: db 0 is shared

    def enqueue_single(self, n: int) -> float:
        async def go() -> None:
            for _ in range(n):
                await queue.enqueue("noop")

        start = time.perf_counter()
        self.loop.run_until_complete(go())
        return time.perf_counter() - start

    def enqueue_bulk(self, n: int) -> float:
        # saq has no bulk enqueue; concurrent enqueues (throttled by max_concurrent_ops 20).
        async def go() -> None:
            for offset in range(0, n, 50):
                await asyncio.gather(*(queue.enqueue("noop") for _ in range(min(50, n - offset))))

        start = time.perf_counter()
        self.loop.run_until_complete(go())
        return time.perf_counter() - start

    def send(self, sent_at: float | None) -> None:
        self.loop.run_until_complete(queue.enqueue("noop", sent_at=sent_at))

    def store_bytes(self) -> int | None:
        return harness.redis_store_bytes(URL, MATCH)

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        workers = "1" if config == "one" else "2"
        return [[sys.executable, "-m", "saq", "peer_saq.settings", "--workers", workers, "--quiet"]]

    def close(self) -> None:
        self.loop.run_until_complete(queue.disconnect())
        self.loop.close()


if __name__ == "__main__":
    harness.main_for(SaqSystem)
