"""taskyard as a benchmarked system: isolated storage per backend, enqueue, and its workers.

Each `reset()` moves to a fresh store (a new SQLite file, PostgreSQL schema or Redis key
prefix) and removes the previous one, so no run sees another's jobs; `close()` removes the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bench.app import QUEUE, build_app
from bench.peers import harness
from taskyard import Taskyard
from taskyard.app import EnqueueItem
from taskyard.services.worker import Worker, WorkerConfig

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("TASKYARD_BENCH_POSTGRES",
                              os.environ.get("TASKYARD_TEST_POSTGRES",
                                             "postgresql://postgres@127.0.0.1:5432/test"))
REDIS_URL = os.environ.get("TASKYARD_BENCH_REDIS",
                           os.environ.get("TASKYARD_TEST_REDIS", "redis://127.0.0.1:6379/0"))
#: A Redis Cluster to measure; unset: the bench starts a local 6-node one (redis-server).
REDIS_CLUSTER_URL = os.environ.get("TASKYARD_BENCH_REDIS_CLUSTER")
#: Kinds on a Redis Cluster, with the extra URL parameters of each.
CLUSTER_KINDS = {"redis-cluster": {}, "redis-cluster-durable": {"durable": "1"}}
MYSQL_URL = os.environ.get("TASKYARD_BENCH_MYSQL",
                           os.environ.get("TASKYARD_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"))
#: Jobs each worker runs at once; no-op async jobs gain from large claim batches.
CONCURRENCY = 50
BULK_CHUNK = 1000


def with_param(url: str, **params: str) -> str:
    """`url` with query parameters added or replaced."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


_cluster: Any = None


def cluster_url() -> str:
    """The Redis Cluster's URL, starting a local one (stopped at exit) on first use."""
    global _cluster
    if REDIS_CLUSTER_URL:
        return REDIS_CLUSTER_URL
    if _cluster is None:
        import atexit

        from tests.support.redis_cluster import LocalCluster

        directory = tempfile.TemporaryDirectory(prefix="taskyard-bench-cluster-")
        cluster = LocalCluster(Path(directory.name))
        try:
            asyncio.run(cluster.start())
        except BaseException:
            cluster.stop()
            directory.cleanup()
            raise
        _cluster = cluster
        atexit.register(directory.cleanup)
        atexit.register(cluster.stop)
    return str(_cluster.url)


def reachable(kind: str) -> str | None:
    """None when `kind`'s server answers, else why not."""
    try:
        if kind in CLUSTER_KINDS:
            cluster_url()
        if kind == "postgres":
            import psycopg

            with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        elif kind == "mysql":
            asyncio.run(_mysql_admin("SELECT 1"))
        elif kind == "redis":
            import redis

            client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
            try:
                client.ping()
            finally:
                client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    if kind == "sqlite":
        with contextlib.suppress(ImportError):
            from taskyard.backends import sqlite

            if hasattr(sqlite, "SqliteBackend"):
                return None
        return "the sqlite backend is not available in this checkout"
    return None


async def _mysql_admin(statement: str) -> None:
    """Run one statement on the benchmark's MySQL server (no database selected)."""
    import asyncmy

    parts = urlsplit(MYSQL_URL)
    conn = await asyncmy.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                                 user=parts.username or "root", password=parts.password or "",
                                 connect_timeout=3, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(statement)
    finally:
        conn.close()


class Storage:
    """Fresh, isolated stores of one backend kind, each removed when done."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._tmp = tempfile.TemporaryDirectory(prefix="taskyard-bench-")
        self._tag = f"bench_{os.getpid()}_{int(time.time())}"

    def url(self, generation: int) -> str:
        """The URL of store number `generation`."""
        if self.kind == "memory":
            return "memory://"
        if self.kind == "sqlite":
            return f"sqlite:///{Path(self._tmp.name) / f'bench-{generation}.db'}"
        if self.kind == "postgres":
            return with_param(POSTGRES_URL, schema=f"{self._tag}_{generation}")
        if self.kind in CLUSTER_KINDS:
            return with_param(cluster_url(), prefix=f"{self._tag}:{generation}:",
                              **CLUSTER_KINDS[self.kind])
        if self.kind == "mysql":
            return urlunsplit(urlsplit(MYSQL_URL)._replace(path=f"/{self._tag}_{generation}"))
        return with_param(REDIS_URL, prefix=f"{self._tag}:{generation}:")

    def remove(self, generation: int) -> None:
        """Delete store number `generation` (file, schema or keys)."""
        if self.kind == "sqlite":
            for path in Path(self._tmp.name).glob(f"bench-{generation}.db*"):
                path.unlink(missing_ok=True)
        elif self.kind == "postgres":
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self._tag}_{generation}" CASCADE')
        elif self.kind == "mysql":
            asyncio.run(_mysql_admin(f"DROP DATABASE IF EXISTS `{self._tag}_{generation}`"))
        elif self.kind == "redis":
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            try:
                keys = list(client.scan_iter(match=f"*{self._tag}:{generation}:*", count=1000))
                for start in range(0, len(keys), 1000):
                    client.delete(*keys[start:start + 1000])
            finally:
                client.close()
        elif self.kind in CLUSTER_KINDS:
            import redis
            from redis.cluster import ClusterNode, RedisCluster

            from taskyard.backends.redis.url import parse_url

            nodes = [ClusterNode(host, port) for host, port in parse_url(cluster_url()).nodes]
            cluster = RedisCluster(startup_nodes=nodes)
            try:
                for node in cluster.get_primaries():
                    one = redis.Redis(host=node.host, port=node.port)
                    try:
                        pipe = one.pipeline(transaction=False)
                        for key in one.scan_iter(match=f"*{self._tag}:{generation}:*", count=1000):
                            pipe.delete(key)  # keys of many slots: one DEL each
                        pipe.execute()
                    finally:
                        one.close()
            finally:
                cluster.close()

    def size(self, generation: int) -> int | None:
        """Bytes store number `generation` takes (None for the memory store)."""
        if self.kind == "sqlite":
            return sum(path.stat().st_size
                       for path in Path(self._tmp.name).glob(f"bench-{generation}.db*"))
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(POSTGRES_URL) as conn:
                row = conn.execute(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind = 'r'",
                    (f"{self._tag}_{generation}",)).fetchone()
            return int(row[0]) if row else None
        if self.kind == "redis":
            return harness.redis_store_bytes(REDIS_URL, f"*{self._tag}:{generation}:*")
        return None

    def close(self) -> None:
        """Remove the temporary directory."""
        self._tmp.cleanup()


class TaskyardSystem(harness.System):
    """taskyard on one backend, driven through its async API on a loop thread of its own."""

    def __init__(self, kind: str, *, concurrency: int = CONCURRENCY) -> None:
        self.kind = kind
        self.name = f"taskyard ({kind})"
        self.concurrency = concurrency
        where = "in-process Worker" if kind == "memory" else "`taskyard worker` process"
        self.configs = {"one": f"1 {where}, concurrency {concurrency}"}
        if kind != "memory":  # a memory store cannot be shared by two processes
            self.configs["best"] = f"2 worker processes, concurrency {concurrency} each"
        self.storage = Storage(kind)
        self.generation = 0
        self.url = self.storage.url(0)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bench-loop", daemon=True)
        self._thread.start()
        self.app: Taskyard | None = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def _app(self) -> Taskyard:
        assert self.app is not None, "reset() opens the app"
        return self.app

    async def _open(self) -> None:
        app = build_app(self.url)
        await app.open()
        await app.backend.migrate()
        self.app = app

    def reset(self) -> None:
        if self.app is not None:
            self._call(self.app.aclose())
            self.app = None
            self.storage.remove(self.generation)
            self.generation += 1
            self.url = self.storage.url(self.generation)
        self._call(self._open())

    def enqueue_single(self, n: int) -> float:
        app = self._app()

        async def go() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await app.aenqueue("bench.noop", {})
            return time.perf_counter() - start

        return self._call(go())

    def enqueue_bulk(self, n: int) -> float:
        app = self._app()

        async def go() -> float:
            start = time.perf_counter()
            for offset in range(0, n, BULK_CHUNK):
                await app.aenqueue_many([EnqueueItem("bench.noop", {})
                                         for _ in range(min(BULK_CHUNK, n - offset))])
            return time.perf_counter() - start

        return self._call(go())

    def store_bytes(self) -> int | None:
        return self.storage.size(self.generation)

    def send(self, sent_at: float | None) -> None:
        app = self._app()

        async def go() -> None:
            # The enqueue time is read on the loop thread: the hop from the harness's thread
            # is this benchmark's plumbing, not taskyard's latency.
            await app.aenqueue("bench.noop", {} if sent_at is None else {"sent_at": time.time()})

        self._call(go())

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        cmd = [sys.executable, "-m", "taskyard", "--app", "bench.app:app", "--backend", self.url,
               "worker", "--queues", QUEUE, "--concurrency", str(self.concurrency)]
        if drain:
            cmd.append("--burst")
        return [cmd] * (1 if config == "one" else 2)

    def start_workers(self, config: str, *, drain: bool, probe: str, cwd: str | Path | None,
                      env: dict[str, str] | None, log: str | Path | None,
                      ) -> contextlib.AbstractContextManager[list[subprocess.Popen[bytes]]]:
        if self.kind != "memory":
            return super().start_workers(config, drain=drain, probe=probe, cwd=REPO,
                                         env={**(env or {}), "PYTHONPATH": str(REPO)}, log=log)
        return self._in_process_worker(probe)

    @contextlib.contextmanager
    def _in_process_worker(self, probe: str) -> Iterator[list[subprocess.Popen[bytes]]]:
        # The memory store lives in this process, so the worker does too (on the loop thread).
        os.environ[harness.PROBE_ENV] = probe
        worker = Worker(self._app(), WorkerConfig(queues=(QUEUE,), concurrency=self.concurrency,
                                                  poll_interval=0.5))
        self._call(worker.start())
        try:
            yield []
        finally:
            self._call(worker.stop(timeout=10))
            os.environ.pop(harness.PROBE_ENV, None)

    def close(self) -> None:
        if self.app is not None:
            self._call(self.app.aclose())
            self.app = None
        self.storage.remove(self.generation)
        self.storage.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()
