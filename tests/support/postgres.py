"""PostgreSQL for tests: a schema per test on the shared server, or a server a test owns.

`isolated_url()` yields `POSTGRES_URL` plus `?schema=ty_<random>`; the schema is created before
and dropped (CASCADE) after. `owned_server()` runs initdb + pg_ctl on a free port in a temp
dir, for tests that stop and restart the server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from tests.support.servers import POSTGRES_URL, unavailable

__all__ = ("OwnedServer", "isolated_url", "owned_server", "schema_url")


def schema_url(base: str, schema: str) -> str:
    """`base` with its `schema` query parameter set to `schema`."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"] + [("schema", schema)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


async def _admin(base: str) -> psycopg.AsyncConnection:
    try:
        return await psycopg.AsyncConnection.connect(base, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {base}", str(exc).strip().splitlines()[0])
        raise  # unreachable: unavailable() fails or skips


@contextlib.asynccontextmanager
async def isolated_url(base: str = POSTGRES_URL) -> AsyncIterator[str]:
    """A backend URL whose schema no other test uses; dropped afterwards."""
    schema = "ty_" + os.urandom(6).hex()
    admin = await _admin(base)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
        yield schema_url(base, schema)
    finally:
        with contextlib.suppress(psycopg.Error):
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]
        await admin.close()


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as `postgres` then."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        unavailable("an owned PostgreSQL server", "running as root without runuser")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        unavailable("an owned PostgreSQL server", "running as root and no `postgres` user exists")
    return [str(runuser), "-u", "postgres", "--"]


@dataclass
class OwnedServer:
    """A PostgreSQL server this test started; it may stop and start it at will."""

    pg_ctl: str
    datadir: Path
    port: int
    prefix: list[str]

    @property
    def url(self) -> str:
        """URL of its `postgres` database (trust auth, user `postgres`)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start (or restart after `stop`); returns once it accepts connections."""
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.datadir), "-w", "-t", "60",
             "-l", str(self.datadir / "log"),
             "-o", f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off",
             "start"],
            check=True, capture_output=True,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop it (`fast` disconnects every client; `immediate` is a crash)."""
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.datadir), "-w", "-t", "60", "-m", mode,
             "stop"],
            check=False, capture_output=True,
        )  # fmt: skip


@contextlib.contextmanager
def owned_server() -> Iterator[OwnedServer]:
    """initdb + pg_ctl on a free port in a temp dir; stopped and removed afterwards."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl)", "not installed")
        raise AssertionError("unreachable")
    prefix = _as_server_user()
    with tempfile.TemporaryDirectory(prefix="taskyard-pg-") as tmp:
        if prefix:
            shutil.chown(tmp, user="postgres")
        datadir = Path(tmp) / "data"
        subprocess.run(
            [*prefix, initdb, "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        server = OwnedServer(pg_ctl, datadir, _free_port(), prefix)
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")
