"""`Waker`: wakes coroutines waiting for work, across event loops and threads.

Used by the in-process backends (memory, and SQLite within one process). A missed wake-up
only adds latency: every waiter also has a timeout and polls again.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ("Waker",)


def _release(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Waker:
    """A broadcast signal: `notify()` releases everyone currently in `wait()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def notify(self) -> None:
        """Wake every waiter. Safe from any thread."""
        with self._lock:
            if not self._waiters:
                return
            waiters, self._waiters = self._waiters, []
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, fut in waiters:
            if loop is current:
                _release(fut)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_release, fut)

    async def wait(self, timeout: float) -> None:
        """Return at the next `notify()` or after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        entry = (loop, fut)
        with self._lock:
            self._waiters.append(entry)
        try:
            await asyncio.wait((fut,), timeout=timeout)
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)
