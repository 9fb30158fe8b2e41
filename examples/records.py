"""`Records`: the examples' own data as JSON documents in the app's database — a table
`example_records` beside taskyard's in the same SQLite file or PostgreSQL schema, so an API, a
worker and a scheduler process (and replicas) see the same data. `memory://` keeps them in the
process (tests, one-process runs).

    records = Records(app)                        # the app's backend URL, read when first used
    await records.add("alerts", key, {...})       # True once per key: idempotent handlers
    await records.put("reports", key, {...}); await records.get("reports", key)
    await records.all("alerts")                   # {key: doc}
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMA = ("CREATE TABLE IF NOT EXISTS example_records (kind TEXT NOT NULL, key TEXT NOT NULL, "
          "doc TEXT NOT NULL, PRIMARY KEY (kind, key))")


class _HasBackendUrl(Protocol):
    backend: Any


class Records:
    """JSON documents by `(kind, key)` in the app's own database. Every method is one
    statement (atomic on its own); `add` is insert-if-absent."""

    def __init__(self, app: _HasBackendUrl) -> None:
        self.app = app
        self._memory: dict[tuple[str, str], str] = {}
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    # -- the operations ---------------------------------------------------------------------
    async def add(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        """Store `doc` unless `(kind, key)` exists; True when it was stored."""
        text = json.dumps(doc)
        if self._url().startswith("memory:"):
            return self._memory.setdefault((kind, key), text) is text
        sql = "INSERT INTO example_records (kind, key, doc) VALUES ({p}, {p}, {p}) ON CONFLICT DO NOTHING"
        return bool(await self._write(sql, (kind, key, text)))

    async def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        """Store `doc` under `(kind, key)`, replacing what was there."""
        text = json.dumps(doc)
        if self._url().startswith("memory:"):
            self._memory[(kind, key)] = text
            return
        sql = ("INSERT INTO example_records (kind, key, doc) VALUES ({p}, {p}, {p}) "
               "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc")
        await self._write(sql, (kind, key, text))

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The document under `(kind, key)`, or None."""
        rows = await self._rows(kind, key)
        return next(iter(rows.values()), None)

    async def all(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every document of `kind`, by key (in key order)."""
        return await self._rows(kind, None)

    # -- storage ----------------------------------------------------------------------------
    def _url(self) -> str:
        return str(self.app.backend.url)

    async def _rows(self, kind: str, key: str | None) -> dict[str, dict[str, Any]]:
        if self._url().startswith("memory:"):
            found = sorted((k, v) for (c, k), v in self._memory.items() if c == kind and key in (None, k))
            return {k: json.loads(v) for k, v in found}
        sql = "SELECT key, doc FROM example_records WHERE kind = {p}" + (" AND key = {p}" if key else "")
        rows = await asyncio.to_thread(self._run, sql + " ORDER BY key", (kind, key) if key else (kind,), True)
        return {k: json.loads(v) for k, v in rows}

    async def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        return int(await asyncio.to_thread(self._run, sql, args, False))

    def _run(self, sql: str, args: tuple[Any, ...], fetch: bool) -> Any:
        with self._connect() as (conn, placeholder):
            cur = conn.execute(sql.format(p=placeholder), args)
            return cur.fetchall() if fetch else cur.rowcount

    @contextmanager
    def _connect(self) -> Iterator[tuple[Any, str]]:
        url = self._url()
        scheme = urlsplit(url).scheme
        if scheme == "sqlite":
            path = url.split("sqlite:///", 1)[1].split("?", 1)[0] or ":memory:"
            with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as conn:
                self._create(url, conn)
                yield conn, "?"
        elif scheme in ("postgresql", "postgres"):
            import psycopg  # only where the app uses PostgreSQL

            parts = urlsplit(url)
            query = parse_qsl(parts.query)
            schema = next((v for k, v in query if k == "schema"), None)
            dsn = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
            with psycopg.connect(dsn, autocommit=True) as conn:
                if schema:
                    conn.execute("SELECT set_config('search_path', %s, false)", (schema,))
                self._create(url, conn)
                yield conn, "%s"
        else:
            raise ValueError(f"the example's records live beside taskyard's tables: use SQLite or "
                             f"PostgreSQL (or memory:// for one process), not {scheme}://")

    def _create(self, url: str, conn: Any) -> None:
        if url not in self._ready:
            with self._lock:
                conn.execute(SCHEMA)
                self._ready.add(url)
