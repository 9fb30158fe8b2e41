"""Running on a Redis Cluster: the cluster client, batches that stand in for pipelines (a
cluster pipeline refuses scripts), and writes confirmed by replicas (`WAIT`).

Every script names keys of one hash slot (see keys.py), so redis-py routes it to the primary
of that slot; a batch sends its plain commands through one cluster pipeline (grouped per
node) and its scripts concurrently, each to its own slot.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MaxConnectionsError,
    MovedError,
    NoScriptError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from taskyard.backends.redis.url import RedisUrl
from taskyard.errors import BackendError

__all__ = (
    "ClusterBatch",
    "ClusterClient",
    "ClusterTransaction",
    "cluster_call",
    "cluster_client",
    "durable_call",
    "durable_cluster_call",
)

#: Scripts one batch runs at once (each holds a connection to its node while it runs).
SCRIPT_CONCURRENCY = 32


class ClusterClient(RedisCluster):
    """`RedisCluster` whose non-transactional `pipeline()` is a `ClusterBatch`, so the
    backend's pipelined code runs unchanged: scripts one by one, plain commands pipelined.
    A transaction (`pipeline(transaction=True)`) stays redis-py's: its keys share one slot."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._node_clients: dict[str, aioredis.Redis] = {}

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        """A `ClusterBatch`, or a `ClusterTransaction` for a transaction."""
        if transaction:
            return ClusterTransaction(self)
        return ClusterBatch(self)

    def node_client(self, node: ClusterNode) -> aioredis.Redis:
        """A plain client of one node (for a transaction over keys that node serves)."""
        client = self._node_clients.get(node.name)
        if client is None:
            pool = aioredis.ConnectionPool(
                connection_class=node.connection_class, **node.connection_kwargs
            )
            client = self._node_clients[node.name] = aioredis.Redis(connection_pool=pool)
        return client

    async def aclose(self) -> None:
        """Close the node clients too."""
        clients, self._node_clients = list(self._node_clients.values()), {}
        for client in clients:
            await client.aclose(close_connection_pool=True)
        await super().aclose()

    @property
    def is_ready(self) -> bool:
        """True once the client knows the cluster's slots (after its first command)."""
        return not self._initialize

    def command_pipeline(self) -> Any:
        """redis-py's non-transactional cluster pipeline (plain commands only)."""
        return super().pipeline()


def cluster_client(url: RedisUrl) -> ClusterClient:
    """The cluster client of `url` (not connected yet)."""
    options = dict(url.cluster_options)
    options.setdefault("socket_connect_timeout", 5.0)
    options.setdefault("socket_timeout", 30.0)
    return ClusterClient(
        startup_nodes=[ClusterNode(host, port) for host, port in url.nodes],
        decode_responses=True,
        # A failover takes a few node timeouts: retries with a backoff ride it out (MOVED
        # and the refreshed slot table then lead to the promoted replica).
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 6),
        **options,
    )


class ClusterBatch:
    """Commands and scripts queued as on a pipeline (`batch.hgetall(key)`,
    `add_script(...)`), sent by `execute()`; results come back in queue order.

    Not atomic across slots, as the pipelines it replaces were not: each script is."""

    def __init__(self, client: ClusterClient) -> None:
        self._client = client
        self._calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def queue(*args: Any, **kwargs: Any) -> ClusterBatch:
            self._calls.append(("command", name, args, kwargs))
            return self

        return queue

    def add_script(self, script: Any, keys: list[str], args: list[Any]) -> None:
        """Queue one registered script."""
        self._calls.append(("script", script, keys, args))

    async def reset(self) -> None:
        """Forget what was queued."""
        self._calls = []

    async def execute(self) -> list[Any]:
        """Run everything queued; raise the first error after every call has finished."""
        calls, self._calls = self._calls, []
        results: list[Any] = [None] * len(calls)
        plain = [i for i, call in enumerate(calls) if call[0] == "command"]
        gate = asyncio.Semaphore(SCRIPT_CONCURRENCY)

        async def commands() -> None:
            pipe = self._client.command_pipeline()
            for i in plain:
                _, name, args, kwargs = calls[i]
                getattr(pipe, name)(*args, **kwargs)
            try:
                replies = await pipe.execute(raise_on_error=False)
            finally:
                await pipe.reset()
            for i, reply in zip(plain, replies, strict=True):
                results[i] = reply

        async def script(i: int) -> None:
            _, registered, keys, args = calls[i]
            async with gate:
                results[i] = await registered(keys=keys, args=args, client=self._client)

        jobs = [script(i) for i, call in enumerate(calls) if call[0] == "script"]
        if plain:
            jobs.append(commands())
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        for outcome in [*outcomes, *results]:
            if isinstance(outcome, BaseException):
                raise outcome
        return results


class ClusterTransaction(ClusterBatch):
    """`MULTI`/`EXEC` over keys of one slot, on a plain client of that slot's primary.

    redis-py's own async cluster transaction runs every queued command through `asyncio.run`
    in a thread of its own (redis-py 8.1), which binds the cluster client's locks to foreign
    event loops ("bound to a different event loop" after a failover) and costs a thread per
    command. A redirection aborts the transaction whole (EXECABORT): it is sent again to the
    slot's new primary.
    """

    async def execute(self) -> list[Any]:
        """Run the queued commands atomically; their replies in order."""
        calls, self._calls = self._calls, []
        key = calls[0][2][0]
        for attempt in range(3):
            if not self._client.is_ready:
                await self._client.initialize()
            node = self._client.get_node_from_key(key)
            if node is None:
                raise BackendError(f"redis cluster: no primary serves the slot of {key!r}")
            pipe = self._client.node_client(node).pipeline(transaction=True)
            for _, name, args, kwargs in calls:
                getattr(pipe, name)(*args, **kwargs)
            try:
                replies: list[Any] = await pipe.execute()
                return replies
            except (MovedError, AskError, TryAgainError, ClusterDownError, RedisConnectionError,
                    OSError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
                await self._client.nodes_manager.initialize()
            finally:
                await pipe.reset()
        raise AssertionError("unreachable")  # pragma: no cover


async def cluster_call(client: ClusterClient, script: Any, keys: list[str], args: list[Any]) -> Any:
    """Run one script on the primary of `keys`' slot, on a connection of that node's pool.

    redis-py's cluster command path (routing, retries, per-command bookkeeping) costs more
    than the round-trip itself for a lone call; this skips it while the topology holds. A
    redirection (nothing ran) or a broken connection goes through the cluster client, which
    follows the new topology (a lost reply can then run the script twice, as its retry would).
    """
    node = client.get_node_from_key(keys[0]) if client.is_ready else None
    if node is None:
        return await script(keys=keys, args=args, client=client)
    try:
        connection = node.acquire_connection()
    except MaxConnectionsError:
        return await script(keys=keys, args=args, client=client)
    try:
        await connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return await connection.read_response()
    except (NoScriptError, MovedError, AskError, TryAgainError):
        pass
    except (RedisConnectionError, OSError):
        await connection.disconnect()
    finally:
        node.release(connection)
    return await script(keys=keys, args=args, client=client)


async def durable_call(
    connection: Any, script: Any, keys: list[str], args: list[Any], replicas: int, timeout: float
) -> Any:
    """Run `script` on `connection`, then `WAIT` until `replicas` replicas acknowledged it.

    WAIT counts the writes of its own connection, so both go on the same one. Raises
    `BackendError` when fewer replicas answered within `timeout`: the write is on the
    primary, but a failover now could lose it.
    """
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    await connection.send_command(*command)
    try:
        reply = await connection.read_response()
    except NoScriptError:
        await connection.send_command("SCRIPT", "LOAD", script.script)
        await connection.read_response()
        await connection.send_command(*command)
        reply = await connection.read_response()
    await connection.send_command("WAIT", replicas, max(1, round(timeout * 1000)))
    acked = int(await connection.read_response())
    if acked < replicas:
        raise BackendError(
            f"redis: only {acked} of {replicas} replicas acknowledged an enqueue within "
            f"{timeout:g} s; it is stored on the primary but a failover now could lose it"
        )
    return reply


async def durable_cluster_call(
    client: ClusterClient,
    script: Any,
    keys: list[str],
    args: list[Any],
    replicas: int,
    timeout: float,
) -> Any:
    """`durable_call` on the primary of `keys`' slot, following one topology change."""
    for attempt in range(3):
        node = client.get_node_from_key(keys[0])
        if node is None:  # no primary known for the slot (mid-failover)
            await client.nodes_manager.initialize()
            continue
        connection = node.acquire_connection()
        try:
            return await durable_call(connection, script, keys, args, replicas, timeout)
        except (MovedError, AskError, TryAgainError, RedisConnectionError, OSError):
            # Nothing ran (a redirection) or the node is gone: learn the new topology.
            await connection.disconnect()
            if attempt == 2:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
            await client.nodes_manager.initialize()
        finally:
            node.release(connection)
    raise BackendError(f"redis cluster: no primary serves the slot of {keys[0]!r}")
