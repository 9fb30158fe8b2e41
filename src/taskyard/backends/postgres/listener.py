"""Wake-ups over LISTEN/NOTIFY: one dedicated connection per backend, reconnecting on its own.

Notifications carry a queue name; a waiter is released when one of its queues (or any, for a
waiter on every queue) is named. While the connection is down, waiters simply time out and
poll; after it is back, everyone is released once, since notifications may have been missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from taskyard.backends.postgres.connection import is_connection_error

__all__ = ("Listener",)

log = logging.getLogger("taskyard.backends.postgres")

_Waiter = tuple[frozenset[str] | None, asyncio.Future[None]]


class Listener:
    """LISTENs on `channel`; `wait()` returns at a matching notification or a timeout.

    The listening task is started by the first `wait()` and stopped by `close()`.
    """

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._waiters: list[_Waiter] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def wait(self, queues: Sequence[str] | None, timeout: float) -> None:
        """Return when a job may be ready in `queues` (None = any), or after `timeout`."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"taskyard-listen-{self._channel}")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter: _Waiter = (frozenset(queues) if queues is not None else None, fut)
        self._waiters.append(waiter)
        try:
            await asyncio.wait((fut,), timeout=timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def wake(self, queue: str | None) -> None:
        """Release the waiters interested in `queue` (None: everyone)."""
        keep: list[_Waiter] = []
        for waiter in self._waiters:
            wanted, fut = waiter
            if queue is None or wanted is None or queue in wanted:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append(waiter)
        self._waiters = keep

    async def close(self) -> None:
        """Stop listening and release every waiter."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.wake(None)

    async def _run(self) -> None:
        delay = 0.1
        outage = False
        while True:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                await conn.execute(f'LISTEN "{self._channel}"')
                if outage:
                    log.warning("LISTEN connection to PostgreSQL restored")
                outage, delay = False, 0.1
                self.connected.set()
                self.wake(None)  # anything may have happened while we were not listening
                async for note in conn.notifies():
                    self.wake(note.payload or None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_connection_error(exc):
                    log.exception("LISTEN loop failed; restarting it")
                elif not outage:
                    log.warning("LISTEN connection to PostgreSQL lost (%s); reconnecting", exc)
                outage = True
            finally:
                self.connected.clear()
                if conn is not None:
                    await _close_quietly(conn)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _close_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await conn.close()
    except Exception:  # the connection is already broken; nothing to release
        return
