"""Wake-ups over Redis pub/sub: one subscriber task per backend wakes local `wait_for_jobs`
(on a Redis Cluster, sharded pub/sub: one channel per queue, one reader per node).

Every script that makes jobs claimable publishes the queue's name on `P + "wake"`. The
subscriber is started by the first `wait_for_jobs` and stopped by `close()`; while Redis is
unreachable it retries in the background and waiters fall back to their poll timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ("ShardWakeListener", "WakeListener")

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

    async def _relay(self, pubsub: Any, kind: str) -> None:
        """Wake the waiters of each queue named by a message of `kind` ("message", or
        "smessage" for sharded pub/sub) until the subscription fails or is cancelled."""
        while True:
            message = await pubsub.get_message(timeout=5.0)
            if message is not None and message.get("type") == kind:
                queue = message["data"]
                if self._on_message is not None:
                    self._on_message(queue)
                self.notify(queue)

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
                await self._relay(pubsub, "message")
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


#: Seconds between the shard listener's checks of what to subscribe (new queues, dead links).
SHARD_TICK = 0.25
#: Seconds a listener of every queue (`queues=None`) trusts its list of queues.
SHARD_QUEUES_TTL = 1.0


class ShardWakeListener(WakeListener):
    """Wake-ups over sharded pub/sub on a Redis Cluster (Redis >= 7): each queue's scripts
    `SPUBLISH` on the queue's own channel, in its slot, so a message stays on its shard.

    The listener subscribes to the channels of the queues its waiters name (a waiter of every
    queue: every known queue, re-read every `SHARD_QUEUES_TTL`), with one connection and one
    reader task per node serving some of them. A waiter whose queues are not subscribed yet
    returns as soon as they are (its next claim finds what it might have missed), as the
    base class does while the subscription is being established.
    """

    def __init__(
        self,
        client: Any,
        channel_of: Callable[[str], str],
        known_queues: Callable[[], Awaitable[list[str]]],
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(client, "", on_message)
        self._channel_of = channel_of
        self._known_queues = known_queues
        self._wanted: set[str] = set()
        self._every_queue = False
        self._live: dict[str, frozenset[str]] = {}  # node name -> queues subscribed there
        self._changed = asyncio.Event()

    def _subscribed(self) -> set[str]:
        return set().union(*self._live.values()) if self._live else set()

    async def wait(self, queues: Sequence[str] | None, timeout: float) -> None:
        """As `WakeListener.wait`, once `queues` (None: every queue) are subscribed."""
        if queues is None:
            if not self._every_queue:
                self._every_queue = True
                self._ready.clear()
                self._changed.set()
        elif not set(queues) <= self._wanted:
            self._wanted |= set(queues)
            self._ready.clear()
            self._changed.set()
        await super().wait(queues, timeout)

    async def _run(self) -> None:
        readers: dict[str, tuple[frozenset[str], asyncio.Task[None]]] = {}
        loop = asyncio.get_running_loop()
        listed_at = -SHARD_QUEUES_TTL
        delay = 0.05
        try:
            while True:
                try:
                    if self._every_queue and loop.time() - listed_at > SHARD_QUEUES_TTL:
                        self._wanted |= set(await self._known_queues())
                        listed_at = loop.time()
                    if not self._client.is_ready:
                        await self._client.initialize()
                    if any(task.done() for _, task in readers.values()):
                        # A node went away: learn where its slots are served now.
                        await self._client.nodes_manager.initialize()
                    self._assign(readers)
                    delay = 0.05
                except Exception as exc:
                    log.warning("redis shard wake-ups: %s; retrying", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                if self._wanted and self._wanted <= self._subscribed() and not self._ready.is_set():
                    self._ready.set()
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), SHARD_TICK)
        finally:
            for _, task in readers.values():
                task.cancel()
            for _, task in readers.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _assign(self, readers: dict[str, tuple[frozenset[str], asyncio.Task[None]]]) -> None:
        """One reader per node for the wanted queues it serves; a reader whose set changed
        (or that died) is replaced."""
        by_node: dict[str, tuple[Any, set[str]]] = {}
        for queue in self._wanted:
            node = self._client.get_node_from_key(self._channel_of(queue))
            if node is not None:
                by_node.setdefault(node.name, (node, set()))[1].add(queue)
        for name in set(readers) - set(by_node):
            readers.pop(name)[1].cancel()
            self._live.pop(name, None)
        for name, (node, queues) in by_node.items():
            current = readers.get(name)
            if current is None or current[1].done() or current[0] != queues:
                if current is not None:
                    current[1].cancel()
                self._live.pop(name, None)
                task = asyncio.get_running_loop().create_task(
                    self._read(node, frozenset(queues)), name=f"taskyard-redis-wake-{name}"
                )
                readers[name] = (frozenset(queues), task)

    async def _read(self, node: Any, queues: frozenset[str]) -> None:
        pubsub = self._client.node_client(node).pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.ssubscribe(*(self._channel_of(q) for q in queues))
            self._live[node.name] = queues
            self._changed.set()
            # Anything published before this subscription is unknown: wake its waiters.
            for queue in queues:
                self.notify(queue)
            await self._relay(pubsub, "smessage")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("redis shard wake-ups from %s lost (%s); resubscribing", node.name, exc)
        finally:
            if self._live.get(node.name) == queues:
                del self._live[node.name]
            self._changed.set()
            with contextlib.suppress(Exception):
                await pubsub.aclose()
