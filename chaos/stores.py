"""Backend stores for a run, isolated: a SQLite file in the run's directory, a PostgreSQL
schema or a Redis key prefix on the shared servers, or a server of the run's own on a free
port (for faults that restart the server). Every store is removed afterwards.

Shared-server URLs come from `TASKYARD_TEST_POSTGRES` and `TASKYARD_TEST_REDIS` (the test
suite's variables); a server that does not answer raises `StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ("KINDS", "Store", "StoreUnavailable", "open_store", "with_address")

KINDS = ("sqlite", "postgres", "redis", "mysql")
POSTGRES_URL = os.environ.get("TASKYARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TASKYARD_TEST_REDIS", "redis://127.0.0.1:6379/0")
MYSQL_URL = os.environ.get("TASKYARD_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")


_DEFAULT_PORTS = {"postgres": 5432, "redis": 6379, "mysql": 3306}


class StoreUnavailable(RuntimeError):
    """The server a store needs is not reachable or not installed."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_query(url: str, **params: str) -> str:
    """`url` with query parameters set."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params] + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_address(url: str, host: str, port: int) -> str:
    """`url` pointing at `host:port` (user and password kept)."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth + '@' if auth else ''}{host}:{port}"))


@dataclass
class Store:
    """One run's backend: `url` for every process; `restart()` when the run owns the server."""

    kind: str
    url: str
    owned: bool = False
    _restart: object = field(default=None, repr=False)

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) of the server, None for SQLite."""
        if self.kind == "sqlite":
            return None
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", int(parts.port or _DEFAULT_PORTS[self.kind])

    async def restart(self, down: float) -> None:
        """Stop the server abruptly, keep it down `down` seconds, start it again."""
        if self._restart is None:
            raise RuntimeError(f"this {self.kind} store is shared; only an owned server restarts")
        await self._restart(down)  # type: ignore[operator]


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise StoreUnavailable(f"PostgreSQL's {name} is not installed")
    return found


def _as_postgres_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode:
        raise StoreUnavailable(f"{' '.join(argv[:4])}... failed: {err.decode(errors='replace')[-300:]}")


@contextlib.asynccontextmanager
async def _owned_postgres(workdir: Path) -> AsyncIterator[Store]:
    # A directory of its own under /tmp: the server's user must reach it (as root, `postgres`).
    with tempfile.TemporaryDirectory(prefix="chaos-pg-") as tmp:
        async with _postgres_in(Path(tmp)) as store:
            yield store


@contextlib.asynccontextmanager
async def _postgres_in(workdir: Path) -> AsyncIterator[Store]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    prefix = _as_postgres_user()
    datadir = workdir / "pgdata"
    if prefix:
        shutil.chown(workdir, user="postgres")
    await _run(*prefix, initdb, "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    port = free_port()
    options = f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"

    async def start() -> None:
        await _run(*prefix, pg_ctl, "-D", str(datadir), "-w", "-t", "60", "-l", str(datadir / "log"),
                   "-o", options, "start")

    async def stop(mode: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            await _run(*prefix, pg_ctl, "-D", str(datadir), "-w", "-t", "60", "-m", mode, "stop")

    async def restart(down: float) -> None:
        await stop("immediate")  # a crash: recovery replays the WAL
        await asyncio.sleep(down)
        await start()

    await start()
    try:
        yield Store("postgres", f"postgresql://postgres@127.0.0.1:{port}/postgres?schema=chaos", True, restart)
    finally:
        await stop("immediate")


@contextlib.asynccontextmanager
async def _owned_redis(workdir: Path) -> AsyncIterator[Store]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise StoreUnavailable("redis-server is not installed")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--appendonly", "yes",
            "--appendfsync", "always", "--save", "", "--logfile", str(workdir / "redis.log")]
    proc: list[subprocess.Popen[bytes]] = []

    async def start() -> None:
        proc[:] = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        for _ in range(400):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise StoreUnavailable(f"redis-server on port {port} did not start")

    def kill() -> None:
        for p in proc:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()

    async def restart(down: float) -> None:
        kill()  # AOF always: nothing acknowledged may be lost
        await asyncio.sleep(down)
        await start()

    await start()
    try:
        yield Store("redis", f"redis://127.0.0.1:{port}/0?prefix=chaos:", True, restart)
    finally:
        kill()


@contextlib.asynccontextmanager
async def _shared_postgres() -> AsyncIterator[Store]:
    import psycopg

    schema = "chaos_" + os.urandom(5).hex()
    try:
        admin = await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"PostgreSQL at {POSTGRES_URL}: {str(exc).strip().splitlines()[0]}") from exc
    try:
        yield Store("postgres", with_query(POSTGRES_URL, schema=schema))
    finally:
        with contextlib.suppress(psycopg.Error):
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@contextlib.asynccontextmanager
async def _shared_redis() -> AsyncIterator[Store]:
    import redis.asyncio as aioredis

    prefix = f"chaos:{os.urandom(5).hex()}:"
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except (OSError, aioredis.ConnectionError) as exc:
        await client.aclose()
        raise StoreUnavailable(f"Redis at {REDIS_URL}: {exc}") from exc
    try:
        yield Store("redis", with_query(REDIS_URL, prefix=prefix))
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i : i + 1000])
        await client.aclose()


@contextlib.asynccontextmanager
async def _shared_mysql() -> AsyncIterator[Store]:
    import asyncmy

    database = "chaos_" + os.urandom(5).hex()
    parts = urlsplit(MYSQL_URL)
    try:
        admin = await asyncmy.connect(
            host=parts.hostname or "127.0.0.1", port=parts.port or 3306, user=parts.username or "root",
            password=parts.password or "", connect_timeout=3, autocommit=True,
        )
    except (OSError, asyncmy.errors.OperationalError) as exc:
        raise StoreUnavailable(f"MySQL at {MYSQL_URL}: {exc}") from exc
    try:
        yield Store("mysql", urlunsplit(parts._replace(path="/" + database)))
    finally:
        with contextlib.suppress(Exception):
            async with admin.cursor() as cur:
                await cur.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.close()


@contextlib.asynccontextmanager
async def open_store(kind: str, workdir: Path, *, owned: bool = False) -> AsyncIterator[Store]:
    """An isolated store of `kind` for one run (`owned`: a server of its own that may restart)."""
    if kind == "sqlite":
        yield Store("sqlite", f"sqlite:///{workdir / 'taskyard.db'}")
        return
    if kind not in KINDS:
        raise ValueError(f"unknown backend {kind!r}; choose from {', '.join(KINDS)}")
    if kind == "mysql":
        if owned:
            raise StoreUnavailable("a MySQL server of the run's own is not supported yet (shared only)")
        async with _shared_mysql() as store:
            yield store
        return
    if owned:
        factory = _owned_postgres if kind == "postgres" else _owned_redis
        async with factory(workdir) as store:
            yield store
    else:
        shared = _shared_postgres if kind == "postgres" else _shared_redis
        async with shared() as store:
            yield store
