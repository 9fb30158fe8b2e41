"""streaq on Redis streams (db 0, key prefix `streaq:taskyard-bench-streaq`): the no-op task."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

import harness
from streaq import Worker

URL = "redis://127.0.0.1:6379/0"
QUEUE = "taskyard-bench-streaq"
#: Every key streaq writes for this queue starts so.
MATCH = f"streaq:{QUEUE}*"

worker = Worker(redis_url=URL, queue_name=QUEUE, concurrency=50)


# silent: no log line per task; ttl 0: no result kept (the benchmark reads none back).
@worker.task(silent=True, ttl=0, max_tries=1)
async def noop(sent_at: float | None = None) -> None:
    """Do nothing but tell the probe."""
    harness.hit(sent_at)


class StreaqSystem(harness.System):
    """streaq 7 (Redis streams, anyio on asyncio), no result kept."""

    name = "streaq"
    configs = {
        "one": "1 process (--workers 1), concurrency 50 (prefetch 50), silent task, ttl 0",
        "best": "2 processes (--workers 2), otherwise the same",
    }

    def __init__(self) -> None:
        # streaq's client context (anyio cancel scopes, coredis context variables) must be
        # left by the task that entered it, so one task on a thread of its own enters it and
        # then runs every call of the benchmark in turn.
        self.calls: asyncio.Queue[tuple[Callable[[], Awaitable[None]], Future[None]] | None]
        self.loop = asyncio.new_event_loop()
        ready: Future[None] = Future()
        self.thread = threading.Thread(target=self.loop.run_until_complete,
                                       args=(self._serve(ready),), name="streaq-client")
        self.thread.start()
        ready.result()

    async def _serve(self, ready: Future[None]) -> None:
        self.calls = asyncio.Queue()
        async with worker:
            ready.set_result(None)
            while (item := await self.calls.get()) is not None:
                call, done = item
                try:
                    await call()
                except BaseException as exc:  # handed to the caller
                    done.set_exception(exc)
                else:
                    done.set_result(None)

    def _run(self, call: Callable[[], Awaitable[None]]) -> None:
        done: Future[None] = Future()
        self.loop.call_soon_threadsafe(self.calls.put_nowait, (call, done))
        done.result()

    def reset(self) -> None:
        harness.redis_delete(URL, MATCH)  # only this queue's keys: db 0 is shared

    def enqueue_single(self, n: int) -> float:
        async def go() -> None:
            for _ in range(n):
                await noop.enqueue()

        start = time.perf_counter()
        self._run(go)
        return time.perf_counter() - start

    def enqueue_bulk(self, n: int) -> float:
        # enqueue_many: one pipeline per 1,000 tasks.
        async def go() -> None:
            for offset in range(0, n, 1000):
                await worker.enqueue_many([noop.enqueue() for _ in range(min(1000, n - offset))])

        start = time.perf_counter()
        self._run(go)
        return time.perf_counter() - start

    def send(self, sent_at: float | None) -> None:
        async def go() -> None:
            await noop.enqueue(sent_at)

        self._run(go)

    def store_bytes(self) -> int | None:
        return harness.redis_store_bytes(URL, MATCH)

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        workers = "1" if config == "one" else "2"
        return [[sys.executable, "-m", "streaq", "run", "peer_streaq:worker", "--workers", workers]]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.calls.put_nowait, None)
        self.thread.join()
        self.loop.close()


if __name__ == "__main__":
    harness.main_for(StreaqSystem)
