"""Connecting: the `mysql://` URL, the pool, transactions, and the one place driver errors
are converted.

URL: `mysql://user[:password]@host[:port]/database?pool_min=1&pool_max=10&connect_timeout=5`.
The database holds taskyard's tables (named `taskyard_*`, so it may be the application's own,
as transactional enqueue needs).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import asyncmy
from asyncmy.constants.CLIENT import FOUND_ROWS
from asyncmy.cursors import Cursor
from asyncmy.errors import IntegrityError, InterfaceError, OperationalError

from taskyard.backends.sql import pool_parameters
from taskyard.errors import BackendUnavailable, ConfigError

__all__ = (
    "DUPLICATE_KEY",
    "MysqlUrl",
    "Pool",
    "converted_errors",
    "is_connection_error",
    "is_retryable",
)

T = TypeVar("T")

_DATABASE_RE = re.compile(r"^[A-Za-z0-9_$]{1,64}$")
_PARAMS = ("pool_min", "pool_max", "connect_timeout")
#: Server error codes: a deadlock or lock wait timeout rolls the transaction back (retry it);
#: a duplicate key means a concurrent writer took an id or unique key (look again).
_DEADLOCK, _LOCK_WAIT_TIMEOUT = 1213, 1205
DUPLICATE_KEY = 1062
_UNKNOWN_DATABASE = 1049
#: Client error codes (2000-2999) and server shutdown codes: the server cannot be used now.
_SERVER_GONE = frozenset({1040, 1053, 1077, 1152, 1927})
#: A transaction refused by a deadlock is tried again this many times.
_TRIES = 5


@dataclass(frozen=True, slots=True)
class MysqlUrl:
    """A parsed `mysql://user[:password]@host[:port]/database` URL."""

    host: str
    port: int
    user: str
    password: str
    database: str
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: float = 5.0

    @classmethod
    def parse(cls, url: str) -> MysqlUrl:
        """Validate `url`; every problem raises `ConfigError` naming it."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "mysql":
            raise ConfigError(f"not a MySQL URL: {url!r} (expected mysql://user@host/database)")
        try:
            port = parts.port or 3306
        except ValueError:
            raise ConfigError(f"MySQL URL {_redacted(url)!r}: the port is not a number") from None
        host = parts.hostname
        if not host:
            raise ConfigError(f"MySQL URL {_redacted(url)!r} names no host (mysql://user@HOST/database)")
        if not parts.username:
            raise ConfigError(f"MySQL URL {_redacted(url)!r} names no user (mysql://USER@host/database)")
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ConfigError(
                f"MySQL URL {_redacted(url)!r} names no database (mysql://user@host/DATABASE)"
            )
        if not _DATABASE_RE.match(database):
            raise ConfigError(
                f"MySQL URL database {database!r} must be 1-64 letters, digits, '_' or '$'"
            )
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(params) - set(_PARAMS))
        if unknown:
            raise ConfigError(
                f"unknown MySQL URL parameter(s): {', '.join(unknown)} (known: {', '.join(_PARAMS)})"
            )
        pool_min, pool_max, timeout = pool_parameters(params, timeout="connect_timeout", label="MySQL URL")
        return cls(
            host=host,
            port=port,
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            database=database,
            pool_min=pool_min,
            pool_max=pool_max,
            connect_timeout=timeout,
        )

    def connect_kwargs(self, *, database: bool = True) -> dict[str, Any]:
        """Keyword arguments of `asyncmy.connect` (without the database: to create it)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "connect_timeout": self.connect_timeout,
            "autocommit": True,
            "charset": "utf8mb4",
            # UPDATE reports the rows it matched, not only those whose values changed.
            "client_flag": FOUND_ROWS,
            # DATETIME columns hold UTC; the session zone only matters to NOW() & co.
            "init_command": "SET time_zone = '+00:00'",
        }
        if database:
            kwargs["db"] = self.database
        return kwargs


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def error_code(exc: BaseException) -> int | None:
    """The MySQL error number of a driver error, if it has one."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_connection_error(exc: BaseException) -> bool:
    """True for failures that mean 'the server cannot be used right now' (retry later)."""
    if isinstance(exc, InterfaceError | ConnectionError | asyncio.TimeoutError | OSError):
        return True
    if isinstance(exc, OperationalError):
        code = error_code(exc)
        return code is None or 2000 <= code < 3000 or code in _SERVER_GONE
    return isinstance(exc, RuntimeError) and "closing pool" in str(exc)


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or lock wait timeout: the server rolled the transaction back; run it again."""
    return isinstance(exc, OperationalError) and error_code(exc) in (_DEADLOCK, _LOCK_WAIT_TIMEOUT)


def is_duplicate_key(exc: BaseException) -> bool:
    """A unique index refused a row (an id or unique key taken by a concurrent writer)."""
    return isinstance(exc, IntegrityError) and error_code(exc) == DUPLICATE_KEY


def is_unknown_database(exc: BaseException) -> bool:
    """The URL's database does not exist."""
    return isinstance(exc, OperationalError) and error_code(exc) == _UNKNOWN_DATABASE


@contextlib.contextmanager
def converted_errors(what: str) -> Any:
    """Re-raise connection failures inside the block as `BackendUnavailable`."""
    try:
        yield
    except BackendUnavailable:
        raise
    except Exception as exc:
        if is_connection_error(exc):
            raise BackendUnavailable(f"MySQL unavailable during {what}: {exc}") from exc
        raise


class Pool:
    """asyncmy's pool with taskyard's session settings: every connection runs its
    transactions at READ COMMITTED (locking reads see the latest commit; no gap locks)."""

    def __init__(self, config: MysqlUrl) -> None:
        self.config = config
        self._pool: Any = None
        # Connections given the session settings. Held (not their ids, which a new connection
        # may reuse) until they are closed.
        self._configured: set[Any] = set()

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self) -> None:
        """Create the pool (connecting `pool_min` connections)."""
        cfg = self.config
        self._pool = await asyncmy.create_pool(
            minsize=cfg.pool_min, maxsize=cfg.pool_max, pool_recycle=600, **cfg.connect_kwargs()
        )

    async def close(self) -> None:
        """Close every connection. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()
        self._configured.clear()

    @contextlib.asynccontextmanager
    async def connection(self, what: str) -> AsyncIterator[Any]:
        """A pooled connection; connection failures become `BackendUnavailable`. A connection
        whose use failed is closed rather than returned, so a restarted server costs one error."""
        pool = self._pool
        if pool is None:
            raise BackendUnavailable(f"MySQL backend is closed (during {what})")
        try:
            # Not asyncio.wait_for: its inner task can finish as the caller is cancelled, and
            # the connection it acquired would then never be released.
            async with asyncio.timeout(self.config.connect_timeout):
                conn = await pool.acquire()
        except Exception as exc:
            if is_connection_error(exc):
                raise BackendUnavailable(f"MySQL unavailable during {what}: {exc}") from exc
            raise
        try:
            if conn not in self._configured:
                async with conn.cursor() as cur:
                    await cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                if len(self._configured) >= 2 * self.config.pool_max:
                    self._configured = {c for c in self._configured if c.connected}
                self._configured.add(conn)
            yield conn
        except BaseException as exc:
            # A cancelled statement leaves the protocol mid-reply, a failed one may mean a dead
            # socket: drop the connection. After other errors it was rolled back and is fine.
            if not isinstance(exc, Exception) or is_connection_error(exc):
                self._configured.discard(conn)
                conn.close()
            if isinstance(exc, Exception) and is_connection_error(exc):
                raise BackendUnavailable(f"MySQL unavailable during {what}: {exc}") from exc
            raise
        finally:
            pool.release(conn)

    async def run(self, what: str, fn: Callable[[Cursor], Awaitable[T]]) -> T:
        """`fn(cursor)` in one transaction, committed when it returns; run again (up to a few
        times) when the server breaks a deadlock by rolling it back."""
        for attempt in range(_TRIES):
            async with self.connection(what) as conn:
                try:
                    await conn.begin()
                    async with conn.cursor() as cur:
                        result = await fn(cur)
                    await conn.commit()
                    return result
                except BaseException as exc:
                    with contextlib.suppress(Exception):
                        await conn.rollback()
                    if attempt + 1 < _TRIES and isinstance(exc, Exception) and is_retryable(exc):
                        continue
                    raise
        raise AssertionError("unreachable")

    async def execute(self, what: str, sql: str, args: Any = None) -> int:
        """One statement outside a transaction (autocommit); returns the rows it changed."""
        async with self.connection(what) as conn, conn.cursor() as cur:
            return int(await cur.execute(sql, args))

    async def fetch(self, what: str, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        """The rows of one read."""
        async with self.connection(what) as conn, conn.cursor() as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())
