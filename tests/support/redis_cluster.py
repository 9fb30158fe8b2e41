"""A real Redis Cluster for tests: 3 primaries + 3 replicas started from `redis-server` on free
loopback ports in a temporary directory, one per test session (per xdist worker).

`isolated_url()` yields a `redis+cluster://...?prefix=ty:<random>:` URL and deletes that
prefix's keys afterwards. `LocalCluster` is also used directly by the failover test, which
kills a primary: such a test starts a cluster of its own (`local_cluster()`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from tests.support.redis import glob_escape, with_prefix
from tests.support.servers import unavailable
from tests.support.waiting import wait_until

#: Milliseconds before a silent primary counts as failed (small: a failover takes ~2-3 s).
NODE_TIMEOUT_MS = 1000


class LocalCluster:
    """Six `redis-server` processes joined into one cluster (3 primaries, 1 replica each)."""

    def __init__(self, directory: Path, nodes: int = 6, replicas: int = 1) -> None:
        self.directory = directory
        self.ports = [_node_port() for _ in range(nodes)]
        self.replicas = replicas
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The cluster's backend URL (every node as a startup node)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/"

    def _start_node(self, port: int) -> None:
        node_dir = self.directory / str(port)
        node_dir.mkdir(exist_ok=True)
        binary = shutil.which("redis-server")
        assert binary is not None
        self.processes[port] = subprocess.Popen(
            [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(node_dir),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--logfile", str(node_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self) -> None:
        """Start every node, join them, and wait until the cluster serves every slot."""
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            unavailable("a Redis Cluster", "redis-server or redis-cli is not on PATH")
        for port in self.ports:
            self._start_node(port)
        for port in self.ports:
            await _wait_answers(port)
        create = await asyncio.create_subprocess_exec(
            "redis-cli", "--cluster", "create",
            *(f"127.0.0.1:{p}" for p in self.ports),
            "--cluster-replicas", str(self.replicas), "--cluster-yes",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await create.communicate()
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.decode()[-2000:]}")
        await self.wait_healthy()

    async def wait_healthy(self, timeout: float = 120.0) -> None:
        """Until every live node reports `cluster_state:ok` and every replica's link to its
        primary is up (a replica still syncing would refuse to acknowledge a WAIT)."""
        states: list[str | None] = []

        async def healthy() -> bool:
            states[:] = [await _cluster_state(p) for p in self.live_ports()]
            links = [await _replica_link(p) for p in self.live_ports()]
            return all(state == "ok" for state in states) and all(links)

        await wait_until(healthy, timeout=timeout, interval=0.1, what=f"a healthy redis cluster (now {states})")

    def live_ports(self) -> list[int]:
        """Ports of the nodes still running."""
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    async def primary_of(self, key: str) -> int:
        """The port of the primary serving `key`'s slot now."""
        client = self.client()
        try:
            await client.initialize()
            node = client.get_node_from_key(key)
            assert node is not None
            return int(node.port)
        finally:
            await client.aclose()

    def client(self) -> RedisCluster:
        """A raw redis-py cluster client (the caller closes it)."""
        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.live_ports()],
            decode_responses=True,
        )

    def kill(self, port: int) -> None:
        """SIGKILL one node."""
        proc = self.processes[port]
        proc.kill()
        proc.wait(timeout=20)

    def stop(self) -> None:
        """Kill every node."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=20)


def _node_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    for _ in range(1000):
        with socket.socket() as sock, socket.socket() as bus:
            port = random.randrange(20000, 55000)
            try:
                sock.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


async def _wait_answers(port: int, timeout: float = 60.0) -> None:
    async def answers() -> bool:
        return await _cluster_state(port) is not None

    await wait_until(answers, timeout=timeout, what=f"redis-server on port {port} to start")


async def _cluster_state(port: int) -> str | None:
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, decode_responses=True)
    try:
        info = await client.execute_command("CLUSTER", "INFO")
        text = info if isinstance(info, str) else str(info)
        for line in text.splitlines():
            if line.startswith("cluster_state:"):
                return line.split(":", 1)[1].strip()
        return "unknown"
    except (OSError, aioredis.RedisError):
        return None
    finally:
        await client.aclose()


async def _replica_link(port: int) -> bool:
    """False for a replica whose link to its primary is not up; True otherwise."""
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, decode_responses=True)
    try:
        info = await client.info("replication")
        return info.get("role") != "slave" or info.get("master_link_status") == "up"
    except (OSError, aioredis.RedisError):
        return False
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def local_cluster() -> AsyncIterator[LocalCluster]:
    """A cluster of the caller's own, torn down afterwards."""
    with tempfile.TemporaryDirectory(prefix="taskyard-cluster-") as tmp:
        cluster = LocalCluster(Path(tmp))
        try:
            await cluster.start()
            yield cluster
        finally:
            cluster.stop()


_shared: tuple[LocalCluster, tempfile.TemporaryDirectory[str]] | None = None
_failed: str | None = None


async def shared_cluster() -> LocalCluster:
    """The session's cluster, started by the first test that asks (stopped at exit)."""
    global _shared, _failed
    if _failed is not None:
        unavailable("a Redis Cluster", _failed)
    if _shared is None:
        tmp = tempfile.TemporaryDirectory(prefix="taskyard-cluster-")
        cluster = LocalCluster(Path(tmp.name))
        try:
            await cluster.start()
        except (OSError, RuntimeError, TimeoutError, AssertionError) as exc:  # the last: a wait timed out
            cluster.stop()
            tmp.cleanup()
            _failed = f"it did not start: {exc}"
            unavailable("a Redis Cluster", _failed)
        _shared = (cluster, tmp)
        atexit.register(_stop_shared)
    return _shared[0]


def _stop_shared() -> None:
    if _shared is not None:
        _shared[0].stop()
        _shared[1].cleanup()


async def delete_prefix(cluster: LocalCluster, prefix: str) -> None:
    """Delete every key under `prefix` on every primary (SCAN + DEL per node)."""
    client = cluster.client()
    try:
        await client.initialize()
        for node in client.get_primaries():
            one = aioredis.Redis(host=node.host, port=int(node.port))
            try:
                keys = [k async for k in one.scan_iter(match=glob_escape(prefix) + "*", count=1000)]
                pipe = one.pipeline(transaction=False)
                for key in keys:  # keys of many slots: one DEL each
                    pipe.delete(key)
                await pipe.execute()
            finally:
                await one.aclose()
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def isolated_url() -> AsyncIterator[str]:
    """A cluster backend URL whose keys no other test touches; deleted afterwards."""
    cluster = await shared_cluster()
    prefix = f"ty:{os.urandom(6).hex()}:"
    try:
        yield with_prefix(cluster.url, prefix)
    finally:
        await delete_prefix(cluster, prefix)
