"""`Portal`: an event loop on a thread of its own, where the sync facade runs the async API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ("Portal",)

T = TypeVar("T")


class Portal:
    """An event loop on a thread of its own, for running coroutines from sync code. Whoever
    creates one owns the thread and ends it with `stop()`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="taskyard-sync", daemon=True)
        self._thread.start()

    @property
    def is_running(self) -> bool:
        """Whether the loop's thread runs (not in a process forked from the owner's)."""
        return self._thread.is_alive()

    def call(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run `coro` on the portal's loop and return its result (blocks the caller). After
        `timeout` seconds (None: no limit) it is cancelled and `TimeoutError` raised."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop and its thread (the loop is closed once the thread has ended)."""
        if not self.is_running:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()
