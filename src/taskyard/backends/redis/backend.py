"""`RedisBackend`: the `Backend` protocol over Redis (`redis://` and `rediss://` URLs; a
Redis Cluster with `redis+cluster://` and `rediss+cluster://`).

Every job transition is one Lua script over one queue's keys, so it is atomic and, with
keys hash-tagged per queue, Cluster-friendly; see `keys.py` for the key schema and
`docs/redis.md` for the rules (claims across queues, uniqueness per queue, wake-ups).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from taskyard.backends.redis.claims import ClaimsMixin
from taskyard.backends.redis.cluster import ClusterMixin
from taskyard.backends.redis.connection import SCHEMA_VERSION
from taskyard.backends.redis.jobs import JobsMixin
from taskyard.backends.redis.keys import QUEUE_KEY_NAMES, queue_tag
from taskyard.backends.redis.maintenance import MaintenanceMixin
from taskyard.backends.redis.signals import ShardWakeListener, WakeListener
from taskyard.backends.redis.workflows import WorkflowsMixin
from taskyard.backends.skew import clock_skew_warning
from taskyard.errors import ConfigError, SchemaVersionError

__all__ = ("RedisBackend",)


class RedisBackend(JobsMixin, ClaimsMixin, MaintenanceMixin, ClusterMixin, WorkflowsMixin):
    """Durable, multi-process backend on a Redis server (`redis://host:port/db?prefix=...`).

    The URL fully describes the backend (a second instance built from `url` shares its data);
    `prefix` (default `taskyard:`) namespaces every key, so installations and tests can share
    one server. All other query parameters are redis-py's connection options.
    """

    shared_across_loops = False

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._listener: WakeListener | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and check the stored schema version (writing it on a fresh server, and
        migrating older keys: see `migrate`)."""
        self._connect()
        with self._guard:
            if self.is_cluster:
                await self._check_sharded_pubsub()
            stored = await self.client.get(self._keys.schema)
            if stored is None:
                await self.client.setnx(self._keys.schema, SCHEMA_VERSION)
            elif int(stored) > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"redis keys under {self.prefix!r} use schema {stored}; this taskyard "
                    f"understands up to {SCHEMA_VERSION}"
                )
            elif int(stored) < SCHEMA_VERSION:
                await self.migrate()

    async def close(self) -> None:
        """Stop the wake-up subscriber and close every connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()
        await self._disconnect()

    async def store_time(self) -> datetime | None:
        with self._guard:
            seconds, micros = await self.client.time()
        return datetime.fromtimestamp(seconds + micros / 1_000_000, UTC)

    async def server_check(self) -> list[str]:
        """Refuse an evicting `maxmemory-policy` (Redis would drop job keys under memory
        pressure, leaving jobs half-stored) unless the URL says `allow_eviction=true`; warn
        when AOF is off (a Redis restart loses every job since the last snapshot). On a
        cluster every primary is checked."""
        with self._guard:
            servers = await self._server_infos()
            before = time.time()
            seconds, micros = await self.client.time()
            after = time.time()
        warnings = []
        for where, memory, persistence in servers:
            policy = str(memory.get("maxmemory_policy", "noeviction"))
            if policy != "noeviction" and not self.allow_eviction:
                raise ConfigError(
                    f"invalid setting 'backend': redis at {where} has "
                    f"maxmemory-policy {policy}, under which it may evict job keys; set it to "
                    "noeviction (or add allow_eviction=true to the URL to accept the risk)"
                )
            if policy != "noeviction":
                warnings.append(
                    f"redis at {where} has maxmemory-policy {policy}: jobs may be evicted "
                    "(allowed by the URL)"
                )
            if not int(persistence.get("aof_enabled", 0)):
                warnings.append(
                    f"redis at {where} has appendonly no: jobs enqueued since the last "
                    "snapshot are lost if the Redis server restarts (see docs/redis.md)"
                )
        if (skew := clock_skew_warning("redis", seconds + micros / 1e6, before, after)) is not None:
            warnings.append(skew)
        return warnings

    async def _server_infos(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(where, INFO memory, INFO persistence) of the server, or of every primary."""
        if not self.is_cluster:
            memory = await self.client.info("memory")
            persistence = await self.client.info("persistence")
            return [(self._guard.where, memory, persistence)]
        primaries = self.client.PRIMARIES
        memory = await self.client.info("memory", target_nodes=primaries)
        persistence = await self.client.info("persistence", target_nodes=primaries)
        return [(node, memory[node], persistence[node]) for node in sorted(memory)]

    async def ping(self) -> None:
        """One round-trip; raises `BackendUnavailable` when Redis cannot be reached."""
        with self._guard:
            await self.client.ping()

    async def schema_version(self) -> int:
        self._connect()
        with self._guard:
            stored = await self.client.get(self._keys.schema)
        return 0 if stored is None else int(stored)

    async def migrate(self) -> int:
        """Bring schema-1 keys to schema 2 in one atomic, idempotent script: the few names
        whose key changed (schedules `due`, `owner:*` and `~*`; queues with a brace or a
        leading `~`) move to their escaped keys, and the due zset and owner sets are rebuilt
        from the schedules. Then record the schema version."""
        k = self._keys
        if self.is_cluster:
            await self._check_cluster_migration()
        with self._guard:
            await self.scripts.migrate(
                keys=[k.scheds, k.sched_due, k.queues, k.schema],
                args=[k.global_base, self.prefix, SCHEMA_VERSION, *QUEUE_KEY_NAMES],
            )
        return SCHEMA_VERSION

    async def _check_cluster_migration(self) -> None:
        """On a cluster the migration script runs in the `{g}` slot: it can move schedules
        (all there) but not a queue whose keys change slot; refuse before touching anything."""
        moving = [q for q in await self._all_queues() if queue_tag(q) != q]
        if moving:
            raise SchemaVersionError(
                f"redis keys under {self.prefix!r} use schema 1 and queue(s) "
                f"{', '.join(map(repr, moving[:5]))} must move to another hash slot, which a "
                "Redis Cluster cannot do in one script: copy the keys to a single Redis server, "
                "run `taskyard migrate` there, then copy them back (see docs/redis.md)"
            )

    # -- wake-ups ----------------------------------------------------------------------------
    async def wait_for_jobs(self, *, queues: Sequence[str] | None, timeout: float) -> None:
        """Block on the pub/sub wake-up channel until one of `queues` gets work, or `timeout`."""
        if self._listener is None and self.sharded_wakeups:
            self._listener = ShardWakeListener(
                self.client, self._keys.queue_channel, self._all_queues, self._saw_queue
            )
        elif self._listener is None:
            self._listener = WakeListener(self.client, self._keys.channel, self._saw_queue)
        await self._listener.wait(queues, timeout)
