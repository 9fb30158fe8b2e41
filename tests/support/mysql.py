"""MySQL/MariaDB for tests: a database per test on the shared server.

`isolated_url()` yields `TASKYARD_TEST_MYSQL_URL` (default mysql://root@127.0.0.1:3306) with
a fresh database `ty_<random>`, created before and dropped after.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncmy

from tests.support.servers import unavailable

__all__ = ("MYSQL_URL", "database_url", "isolated_url")

MYSQL_URL = os.environ.get("TASKYARD_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")


def database_url(base: str, database: str) -> str:
    """`base` with its path set to `database`."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


async def _admin(base: str) -> asyncmy.Connection:
    parts = urlsplit(base)
    try:
        return await asyncmy.connect(
            host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
            user=parts.username or "root", password=parts.password or "",
            connect_timeout=3, autocommit=True,
        )  # fmt: skip
    except (asyncmy.errors.OperationalError, OSError) as exc:
        unavailable(f"MySQL at {base}", str(exc).strip().splitlines()[0])
        raise  # unreachable: unavailable() fails or skips


@contextlib.asynccontextmanager
async def isolated_url(base: str = MYSQL_URL) -> AsyncIterator[str]:
    """A backend URL whose database no other test uses; dropped afterwards."""
    database = "ty_" + os.urandom(6).hex()
    admin = await _admin(base)
    try:
        async with admin.cursor() as cur:
            await cur.execute(f"CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        yield database_url(base, database)
    finally:
        with contextlib.suppress(Exception):
            async with admin.cursor() as cur:
                await cur.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.close()
