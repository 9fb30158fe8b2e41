"""Wake-ups over Redis pub/sub: one subscriber task per backend wakes local `wait_for_jobs`.

Every script that makes jobs claimable publishes the queue's name on `P + "wake"`. The
subscriber is started by the first `wait_for_jobs` and stopped by `close()`; while Redis is
unreachable it retries in the background and waiters fall back to their poll timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ("WakeListener",)

log = logging.getLogger("taskyard.backends.redis")


class WakeListener:
    """Subscribes to the wake channel and releases the waiters of the named queue."""

    def __init__(
        self, client: Any, channel: str, on_message: Callable[[str], None] | None = None
    ) -> None:
        self._client = client
        self._channel = channel
        self._waiters: list[tuple[frozenset[str] | None, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._on_message = on_message

    @property
    def running(self) -> bool:
        """True while the subscriber task is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the subscriber task on the running loop (idempotent)."""
        if not self.running:
            self._ready = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="taskyard-redis-wake"
            )

    async def stop(self) -> None:
        """Stop the subscriber and release every waiter."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.notify(None)

    def notify(self, queue: str | None) -> None:
        """Release waiters of `queue` (None: everyone)."""
        keep: list[tuple[frozenset[str] | None, asyncio.Future[None]]] = []
        for queues, fut in self._waiters:
            if queue is None or queues is None or queue in queues:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((queues, fut))
        self._waiters = keep

    async def wait(self, queues: Sequence[str] | None, timeout: float) -> None:
        """Return when a wake-up for one of `queues` arrives, or after `timeout` seconds.

        Returns at once while the subscription is not yet established, so a job published
        before it existed is found by the caller's next claim instead of after a timeout.
        """
        self.start()
        if not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (None if queues is None else frozenset(queues), fut)
        self._waiters.append(entry)
        try:
            # Awaiting the future itself wakes this task straight from `notify`;
            # `asyncio.wait` would add a callback and a loop iteration on the way.
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            pass
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def _run(self) -> None:
        delay = 0.05
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._ready.set()
                # Anything published while we were not subscribed is unknown: wake everyone.
                self.notify(None)
                delay = 0.05
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "message":
                        queue = message["data"]
                        if self._on_message is not None:
                            self._on_message(queue)
                        self.notify(queue)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._ready.is_set():
                    log.warning("redis wake-up subscription lost (%s); retrying", exc)
                self._ready.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
