"""The SQLite connection: URL options, and one connection on a dedicated thread.

Every protocol call runs as one function on that thread, inside one transaction, so the
event loop never blocks on SQLite and each call is atomic. Write transactions start with
`BEGIN IMMEDIATE`: the write lock is taken before anything is read, so two processes can
never both select the same job to claim.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl

from taskyard.errors import BackendError, BackendUnavailable, ConfigError

__all__ = ("Connection", "SqliteOptions", "parse_url")

T = TypeVar("T")

_SYNC_LEVELS = ("off", "normal", "full", "extra")


@dataclass(frozen=True, slots=True)
class SqliteOptions:
    """What a `sqlite:///PATH?option=value` URL says.

    `synchronous` defaults to `normal`: in WAL mode a commit survives a crash of the process
    but the last commits may be lost on power failure (the database stays consistent);
    `?synchronous=full` syncs the WAL on every commit. `busy_timeout` (ms) is how long a
    write waits for another process's write lock.
    """

    path: str
    synchronous: str = "normal"
    busy_timeout: int = 5000


def parse_url(url: str) -> SqliteOptions:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:`, with options."""
    if not url.startswith("sqlite://"):
        raise ConfigError(f"not a SQLite URL: {url!r} (expected sqlite:///PATH)")
    rest = url[len("sqlite://") :]
    path, _, query = rest.partition("?")
    if not path.startswith("/") or len(path) < 2:
        raise ConfigError(f"SQLite URL {url!r} has no file path (expected sqlite:///PATH)")
    path = path[1:]
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        options[key.lower()] = value
    synchronous = options.pop("synchronous", "normal").lower()
    if synchronous not in _SYNC_LEVELS:
        raise ConfigError(
            f"SQLite URL option synchronous={synchronous!r} is invalid; use one of "
            + ", ".join(_SYNC_LEVELS)
        )
    raw_timeout = options.pop("busy_timeout", "5000")
    try:
        busy_timeout = int(raw_timeout)
    except ValueError:
        raise ConfigError(
            f"SQLite URL option busy_timeout={raw_timeout!r} must be milliseconds"
        ) from None
    if options:
        raise ConfigError(
            f"unknown SQLite URL option(s): {', '.join(sorted(options))} "
            "(known: synchronous, busy_timeout)"
        )
    return SqliteOptions(path=path, synchronous=synchronous, busy_timeout=busy_timeout)


def _convert(exc: sqlite3.Error, path: str) -> BackendError:
    message = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and any(
        word in message for word in ("locked", "busy", "unable to open", "disk I/O")
    ):
        return BackendUnavailable(f"SQLite file {path!r}: {message}")
    return BackendError(f"SQLite file {path!r}: {message}")


class Connection:
    """One `sqlite3` connection owned by one thread; `run(fn)` calls `fn(conn)` there."""

    def __init__(self, options: SqliteOptions) -> None:
        self.options = options
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def open(self) -> None:
        """Start the thread and connect (WAL, synchronous level, busy timeout)."""
        if self._executor is not None:
            return
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="taskyard-sqlite"
        )
        try:
            self._conn = await self._submit(self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _connect(self) -> sqlite3.Connection:
        opts = self.options
        if opts.path != ":memory:":
            Path(opts.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                opts.path,
                timeout=opts.busy_timeout / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(opts.busy_timeout)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {opts.synchronous.upper()}")
            conn.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.Error as exc:
            raise _convert(exc, opts.path) from exc
        return conn

    async def close(self) -> None:
        """Close the connection and stop the thread. Idempotent."""
        executor, self._executor = self._executor, None
        conn, self._conn = self._conn, None
        if executor is None:
            return
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=False)

    async def _submit(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise BackendUnavailable(f"SQLite backend for {self.options.path!r} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on the connection's thread (no transaction of its own)."""

        def call() -> T:
            conn = self._conn
            if conn is None:
                raise BackendUnavailable(f"SQLite backend for {self.options.path!r} is closed")
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                raise _convert(exc, self.options.path) from exc

        return await self._submit(call)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in a read transaction (one consistent snapshot)."""
        return await self.run(lambda conn: _in_transaction(conn, "BEGIN", fn))

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in a write transaction taken at once (`BEGIN IMMEDIATE`)."""
        return await self.run(lambda conn: _in_transaction(conn, "BEGIN IMMEDIATE", fn))


def _in_transaction(
    conn: sqlite3.Connection, begin: str, fn: Callable[[sqlite3.Connection], T]
) -> T:
    conn.execute(begin)
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
