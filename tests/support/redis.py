"""Redis for tests: an isolated key prefix on the shared server, and servers a test owns.

`isolated_url()` yields a `redis://...?prefix=ty:<random>:` URL and deletes that prefix's keys
afterwards (SCAN + DEL, never FLUSHALL). `owned_server()` starts a private `redis-server` on a
free port (AOF on) that a test may stop and restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support.servers import REDIS_URL, unavailable


def with_prefix(url: str, prefix: str) -> str:
    """`url` with taskyard's key prefix parameter set."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"prefix": prefix})) if q)
    return urlunsplit(parts._replace(query=query))


async def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key under `prefix` (SCAN + DEL); returns how many."""
    client = aioredis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=glob_escape(prefix) + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.delete(*batch)
                batch.clear()
        if batch:
            deleted += await client.delete(*batch)
    finally:
        await client.aclose()
    return deleted


def glob_escape(text: str) -> str:
    """`text` as a literal in a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def _reachable(url: str) -> str | None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
        return None
    except (RedisConnectionError, OSError) as exc:
        return str(exc)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def isolated_url(base_url: str | None = None) -> AsyncIterator[str]:
    """A backend URL whose keys no other test touches; they are deleted afterwards."""
    base_url = base_url or REDIS_URL
    why = await _reachable(base_url)
    if why is not None:
        unavailable(f"Redis at {base_url}", why)
    prefix = f"ty:{os.urandom(6).hex()}:"
    try:
        yield with_prefix(base_url, prefix)
    finally:
        await delete_prefix(base_url, prefix)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnedRedis:
    """A private `redis-server` (AOF on, fsync always) that a test may stop and start again."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start the server and wait until it answers (and has loaded its AOF)."""
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server", "the binary is not on PATH")
        self.process = subprocess.Popen(
            [
                str(binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while loop.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if await _reachable(self.url) is None:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not start")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGKILL when `kill`, else SIGTERM) and wait for it to exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


@contextlib.asynccontextmanager
async def owned_server() -> AsyncIterator[OwnedRedis]:
    """A private Redis server in a temporary directory, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="taskyard-redis-") as tmp:
        server = OwnedRedis(Path(tmp))
        await server.start()
        try:
            yield server
        finally:
            server.stop(kill=True)
