"""Wake-ups of `MysqlBackend` by polling: MySQL has no LISTEN/NOTIFY, so a waiter polls one
cheap query with a short backoff, and writes in this process wake it at once. Mixed into the
backend, whose `_run` it uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

from asyncmy.cursors import Cursor

from taskyard.backends.wakeup import Waker

from . import jobs
from .schema import Tables

__all__ = ("PollingWakeups",)

T = TypeVar("T")

#: Polling while waiting for jobs: fast after activity, slower when idle.
_POLL_MIN = 0.005
_POLL_MAX = 0.1


class PollingWakeups:
    """`wait_for_jobs` by polling, and the local wake-ups of this process's writes."""

    tables: Tables

    def _start_polling(self) -> None:
        """The polling state (the backend's `__init__` calls it)."""
        self._waker = Waker()
        self._seen: dict[frozenset[str] | None, tuple[Any, ...]] = {}
        self._poll = _POLL_MIN
        self._wakes = 0  # local wake-ups so far: a waiter knows it was woken

    async def _run(self, what: str, fn: Callable[[Cursor], Awaitable[T]]) -> T:
        raise NotImplementedError

    def _notify(self) -> None:
        self._wakes += 1
        self._waker.notify()

    def _wake(self, queues: Collection[str]) -> None:
        if queues:
            self._notify()

    async def wait_for_jobs(self, *, queues: Sequence[str] | None, timeout: float) -> None:
        """Poll, with a backoff from 5 ms to 100 ms, for a change in what may be claimable in
        `queues`: the due jobs (how many, the newest id), the running ones (a finished job
        frees a concurrency slot) and the queue settings. Returns at the first change since
        this backend last looked, at a local enqueue or resume, or after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = None if queues is None else frozenset(queues)
        wakes = self._wakes
        while True:
            signature = await self._run("wait_for_jobs", lambda cur: self._signature(cur, key))
            if self._seen.get(key) != signature:
                self._seen[key] = signature
                self._poll = _POLL_MIN
                return
            remaining = deadline - loop.time()
            if remaining <= 0 or self._wakes != wakes:
                return
            await self._waker.wait(min(self._poll, remaining))
            if self._wakes != wakes:
                return
            self._poll = min(self._poll * 1.5, _POLL_MAX)

    async def _signature(self, cur: Cursor, queues: frozenset[str] | None) -> tuple[Any, ...]:
        t = self.tables
        where, args = "", []
        if queues is not None:
            where = f" AND queue IN ({jobs.marks(len(queues))})"
            args = sorted(queues)
        await cur.execute(
            f"SELECT (SELECT COUNT(*) FROM {t.jobs} WHERE status = 'pending'{where}), "
            f"(SELECT MAX(id) FROM {t.jobs} WHERE status = 'pending'{where}), "
            f"(SELECT COUNT(*) FROM {t.jobs} WHERE status = 'scheduled' "
            f"AND run_at <= UTC_TIMESTAMP(6){where}), "
            f"(SELECT COUNT(*) FROM {t.jobs} WHERE status = 'running'{where}), "
            f"(SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(paused), 0), ':', "
            "COALESCE(SUM(COALESCE(concurrency, -1) + 7 * COALESCE(rate_limit, -1)), 0)) "
            f"FROM {t.queues})",
            [*args, *args, *args, *args],
        )
        row: Any = await cur.fetchone()
        return tuple(row)
