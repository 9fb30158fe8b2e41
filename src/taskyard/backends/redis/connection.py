"""The Redis connection shared by the backend's parts: URL options, the client, the scripts,
driver-error conversion, and the job directory (job id -> queue) with its in-process cache.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, NoScriptError, ReadOnlyError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskyard.backends.redis.keys import Keys
from taskyard.backends.redis.scripts import Scripts
from taskyard.backends.redis.shards import (
    ClusterBatch,
    cluster_call,
    cluster_client,
    durable_call,
    durable_cluster_call,
)
from taskyard.backends.redis.url import DEFAULT_PREFIX, RedisUrl, parse_url
from taskyard.errors import BackendUnavailable

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis < 2.2 has no packer: redis-py's is used
    _hiredis_pack = None

__all__ = ("DEFAULT_PREFIX", "RedisConnection", "parse_url")

#: 2: names that could reach another key are escaped in keys (see keys.py).
SCHEMA_VERSION = 2
_CACHE_MAX = 200_000
#: Seconds a claim over every queue (`queues=None`) trusts its list of queue names.
QUEUES_TTL = 1.0
#: ClusterDownError / TryAgainError: a Redis Cluster in the middle of a failover.
_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
    OSError,
)


class _Guard:
    """Converts driver connection failures into `BackendUnavailable`, in one place."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> _Guard:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and isinstance(exc, _UNAVAILABLE):
            raise BackendUnavailable(f"redis at {self.where} is unavailable: {exc}") from exc


class _PromptWrites:
    """Connection mixin: a command goes straight into the socket's buffer.

    redis-py wraps every write in `asyncio.wait_for(..., socket_timeout)`, which on Python
    3.11 costs a task and an extra loop iteration per command. Writing never blocks; only
    draining a full buffer (or noticing a closed socket) waits, so only that goes through
    `wait_for`, with redis-py's own timeout and error handling.
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        this: Any = self
        if not this.is_connected or not this.socket_timeout:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        if check_health:
            await this.check_health()
        writer = getattr(this, "_writer", None)
        if writer is None:  # the health check dropped the connection
            await super().send_packed_command(command, False)  # type: ignore[misc]
            return
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            writer.writelines(command)
            transport = writer.transport
            if transport.is_closing() or transport.get_write_buffer_size():
                await asyncio.wait_for(writer.drain(), this.socket_timeout)
        except TimeoutError:
            await this.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await this.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            await this.disconnect(nowait=True)
            raise


def _prompt(connection_class: type) -> type:
    """`connection_class` (plain, TLS or Unix socket: the URL chose it) with `_PromptWrites`."""
    return type(f"Prompt{connection_class.__name__}", (_PromptWrites, connection_class), {})


class RedisConnection:
    """Connection state of one `RedisBackend`; opened on the event loop that uses it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.options: RedisUrl = parse_url(url)
        self.prefix = self.options.prefix
        self.allow_eviction = self.options.allow_eviction
        self._guard = _Guard(self.options.where)
        self._keys = Keys(self.prefix)
        self._client: Any = None
        self._scripts: Any = None
        self._lane: Any = None
        self._lane_busy = False
        self._queue_cache: dict[str, str] = {}
        self._queue_list: tuple[float, list[str]] | None = None
        #: True while one script may touch keys of several hash slots (a single server): an
        #: enqueue is then one script. On a Redis Cluster it is False: enqueue then reserves
        #: in the `{g}` slot, then writes each queue.
        self.single_node = not self.options.is_cluster
        #: Wake-ups over sharded pub/sub (a cluster of Redis >= 7, learnt by `open`).
        self.sharded_wakeups = False

    @property
    def _wake_channel(self) -> str:
        """The channel job scripts publish wake-ups on: one for the installation, or '' on a
        cluster of Redis >= 7, where each queue has a shard channel (`Keys.queue_channel`)."""
        return "" if self.sharded_wakeups else self._keys.channel

    async def _check_sharded_pubsub(self) -> None:
        """Use sharded pub/sub when every primary of the cluster runs Redis 7 or later (an
        older one has no SPUBLISH: the classic channel, broadcast by the cluster, serves)."""
        info = await self.client.info("server", target_nodes=self.client.PRIMARIES)
        majors = [int(str(node["redis_version"]).split(".")[0]) for node in info.values()]
        self.sharded_wakeups = bool(majors) and min(majors) >= 7

    @property
    def is_cluster(self) -> bool:
        """True when the URL names a Redis Cluster."""
        return self.options.is_cluster

    def _connect(self) -> None:
        if self._client is None and self.is_cluster:
            self._client = cluster_client(self.options)
            self._scripts = Scripts(self._client)
        elif self._client is None:
            # One transparent retry replaces a pooled connection that a server restart broke;
            # a real outage then surfaces quickly as BackendUnavailable.
            self._client = aioredis.Redis.from_url(
                self.options.server_url,
                decode_responses=True,
                socket_connect_timeout=5.0,
                socket_timeout=30.0,
                health_check_interval=15,
                retry=Retry(NoBackoff(), 1),
            )
            pool = self._client.connection_pool
            pool.connection_class = _prompt(pool.connection_class)
            self._scripts = Scripts(self._client)

    @property
    def client(self) -> Any:
        """The redis-py client (connecting lazily)."""
        self._connect()
        return self._client

    @property
    def scripts(self) -> Any:
        """The registered scripts."""
        self._connect()
        return self._scripts

    async def _disconnect(self) -> None:
        client, self._client, self._scripts = self._client, None, None
        lane, self._lane = self._lane, None
        if lane is not None:
            await lane.disconnect()
        if client is not None:
            await client.aclose()

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run one registered script now and return its reply.

        A lone call (one enqueue, one claim) runs on the lane: a connection of this backend's
        own, so it skips the pool's checkout and per-command bookkeeping, which cost as much
        as the round-trip itself. Calls that overlap it go through the pool as usual. On a
        cluster the script goes straight to a pooled connection of its slot's primary.
        """
        if self.is_cluster:
            return await cluster_call(self.client, script, keys, args)
        if self._lane_busy:
            return await script(keys=keys, args=args, client=self.client)
        self._lane_busy = True
        try:
            return await self._run_on_lane(script, keys, args)
        finally:
            self._lane_busy = False

    async def _run_on_lane(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        lane = self._lane
        if lane is None:
            pool = self.client.connection_pool
            lane = self._lane = pool.connection_class(**pool.connection_kwargs)
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        packed = _hiredis_pack(command) if _hiredis_pack is not None else lane.pack_command(*command)
        reconnected = loaded = False
        while True:
            try:
                await lane.send_packed_command(packed)
                return await lane.read_response()
            except NoScriptError:
                # The server restarted or was flushed; the script did not run.
                if loaded:
                    raise
                loaded = True
                await self.client.script_load(script.script)
            except (RedisConnectionError, RedisTimeoutError):
                # As the client's own `Retry(NoBackoff(), 1)`: one new connection, then give up.
                await lane.disconnect()
                if reconnected:
                    raise
                reconnected = True

    async def _execute(self, pipe: Any) -> list[Any]:
        """Run a pipeline and always hand its connection back: redis-py keeps the connection
        of a pipeline whose script check (SCRIPT EXISTS) failed during an outage.

        A non-transactional pipeline skips that check, which would cost a round-trip of its
        own on every call: its scripts run by hash, and only the ones the server answers
        NOSCRIPT (it restarted or was flushed) are loaded and run again. A NOSCRIPT command
        did not run, so running it again is safe; each script is atomic on its own.

        On a cluster a non-transactional "pipeline" is a `ClusterBatch`, and a transaction's
        keys share one slot.
        """
        if self.is_cluster:
            try:
                replies: list[Any] = await pipe.execute()
            finally:
                await pipe.reset()
            return replies
        scripts: list[Any] = []
        if pipe.scripts and not pipe.is_transaction:
            scripts, pipe.scripts = list(pipe.scripts), set()
        commands = list(pipe.command_stack)
        try:
            result: list[Any] = await pipe.execute(raise_on_error=not scripts)
        finally:
            await pipe.reset()
        if scripts:
            await self._rerun_missing(pipe, scripts, commands, result)
        return result

    async def _rerun_missing(
        self, pipe: Any, scripts: list[Any], commands: list[Any], result: list[Any]
    ) -> None:
        """Load `scripts` and re-run the pipelined commands the server answered NOSCRIPT
        (in place in `result`); then raise the first other error, as `execute()` would."""
        missing = [i for i, reply in enumerate(result) if isinstance(reply, NoScriptError)]
        if missing:
            for script in scripts:
                # A script's hash is the SHA1 of its source: the queued EVALSHAs stay valid.
                await self.client.script_load(script.script)
            again = self.client.pipeline(transaction=False)
            for i in missing:
                args, options = commands[i]
                again.execute_command(*args, **options)
            try:
                replies = await again.execute(raise_on_error=False)
            finally:
                await again.reset()
            for i, reply in zip(missing, replies, strict=True):
                result[i] = reply
        pipe.raise_first_error(commands, result)

    async def _job_script(
        self, name: str, queue: str, args: Iterable[Any], client: Any = None
    ) -> Any:
        """Run the per-queue script `name` on `queue` (or queue it on a pipeline `client`)."""
        keys, job_prefix = self._keys.queue(queue)
        script = getattr(self.scripts, name)
        args = [job_prefix, self._wake_channel, queue, *args]
        if isinstance(client, ClusterBatch):
            client.add_script(script, keys, args)
            return None
        if client is None:
            return await self._run(script, keys, args)
        return await script(keys=keys, args=args, client=client)

    async def _durable_job_script(self, name: str, queue: str, args: list[Any]) -> Any:
        """`_job_script` confirmed by the URL's `durable` replicas."""
        keys, job_prefix = self._keys.queue(queue)
        script = getattr(self.scripts, name)
        return await self._durable(script, keys, [job_prefix, self._wake_channel, queue, *args])

    async def _durable(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run `script`, then wait until the URL's `durable` replicas acknowledged it."""
        replicas, timeout = self.options.durable_replicas, self.options.durable_timeout
        if self.is_cluster:
            return await durable_cluster_call(self.client, script, keys, args, replicas, timeout)
        pool = self.client.connection_pool
        connection = await pool.get_connection()
        try:
            return await durable_call(connection, script, keys, args, replicas, timeout)
        except (RedisConnectionError, RedisTimeoutError):
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)

    # -- the directory ---------------------------------------------------------------------
    def _remember(self, job_id: str, queue: str) -> None:
        if len(self._queue_cache) >= _CACHE_MAX:
            self._queue_cache.clear()
        self._queue_cache[job_id] = queue

    async def _reserve(self, entries: list[tuple[str, str, str]]) -> list[list[Any]]:
        """Directory entries and unique keys for `(id, queue, unique key or '')` entries; see
        `scripts/reserve.lua` for the reply."""
        flat: list[str] = []
        for entry in entries:
            flat += entry
        run = self._durable if self.options.durable_replicas else self._run
        with self._guard:
            replies: list[list[Any]] = await run(
                self.scripts.reserve,
                [self._keys.ids, self._keys.queues, self._keys.unique],
                [json.dumps(flat)],
            )
        for (job_id, _, _), reply in zip(entries, replies, strict=True):
            self._remember(job_id, reply[0])
        return replies

    async def _submit(self, rows: list[list[str]]) -> list[list[Any]]:
        """Reserve and create jobs in one script, for `[id, queue, unique key or '', status,
        score, field, value...]` rows; see `scripts/submit.lua` for the reply."""
        run = self._durable if self.options.durable_replicas else self._run
        with self._guard:
            replies: list[list[Any]] = await run(
                self.scripts.submit,
                [self._keys.ids, self._keys.queues, self._keys.unique],
                # One draft (the common `enqueue`) travels as plain arguments: no JSON to
                # build here nor to decode in the script.
                [self.prefix, self._keys.channel, "", *rows[0]]
                if len(rows) == 1
                else [self.prefix, self._keys.channel, json.dumps(rows)],
            )
        for row, reply in zip(rows, replies, strict=True):
            if reply[1] != "holder":
                self._remember(row[0], reply[0])
        return replies

    async def _unique_swap(self, key: str, expected: str, job_id: str) -> list[Any]:
        """Hand unique `key` from `expected` ('' = nobody) to `job_id`; see `unique_swap.lua`."""
        with self._guard:
            reply: list[Any] = await self._run(
                self.scripts.unique_swap,
                [self._keys.ids, self._keys.queues, self._keys.unique],
                [key, expected, job_id],
            )
        return reply

    async def _queues_of(self, job_ids: Iterable[str]) -> dict[str, str | None]:
        """The queue of each id (None for unknown ids), from the cache or the directory."""
        found: dict[str, str | None] = {}
        missing = []
        for job_id in job_ids:
            queue = self._queue_cache.get(job_id)
            if queue is None:
                missing.append(job_id)
            else:
                found[job_id] = queue
        if missing:
            with self._guard:
                stored = await self.client.hmget(self._keys.ids, missing)
            for job_id, queue in zip(missing, stored, strict=True):
                found[job_id] = queue
                if queue is not None:
                    self._remember(job_id, queue)
        return found

    async def _queue_of(self, job_id: str) -> str | None:
        return (await self._queues_of((job_id,)))[job_id]

    # -- queue names -----------------------------------------------------------------------
    async def _known_queues(self) -> list[str]:
        """Every queue, re-read at most every `QUEUES_TTL` seconds or when a wake-up names a
        queue not seen yet (claims with `queues=None` would otherwise pay a round-trip)."""
        now = time.monotonic()
        if self._queue_list is None or now - self._queue_list[0] > QUEUES_TTL:
            self._queue_list = (now, await self._all_queues())
        return self._queue_list[1]

    def _saw_queue(self, queue: str) -> None:
        if self._queue_list is not None and queue not in self._queue_list[1]:
            self._queue_list = None

    async def _all_queues(self) -> list[str]:
        with self._guard:
            names = await self.client.smembers(self._keys.queues)
        return sorted(names)
