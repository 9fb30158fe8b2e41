"""`MemoryBackend`: the executable specification of the `Backend` protocol.

Everything lives in dicts and heaps of this process; nothing survives a restart. The parts
(jobs, claims and settling, queues, schedules, cluster) share one `MemoryState`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from .claims import ClaimsMixin
from .cluster import ClusterMixin
from .jobs import JobsMixin
from .queues import QueuesMixin
from .schedules import SchedulesMixin
from .workflows import WorkflowsMixin

__all__ = ("MemoryBackend",)


class MemoryBackend(JobsMixin, ClaimsMixin, WorkflowsMixin, QueuesMixin, SchedulesMixin, ClusterMixin):
    """In-process, non-durable backend (`memory://`)."""

    shared_across_loops = True  # one process-wide store behind a lock

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        return None

    async def close(self) -> None:
        self._waker.notify()

    async def ping(self) -> None:
        return None

    async def migrate(self) -> int:
        return 1

    async def schema_version(self) -> int:
        return 1  # in-process: the "schema" exists with the backend

    async def store_time(self) -> datetime | None:
        return None  # in-process: this process's clock is the store's

    async def server_check(self) -> list[str]:
        return []

    # -- wake-ups ----------------------------------------------------------------------------
    async def wait_for_jobs(self, *, queues: Sequence[str] | None, timeout: float) -> None:
        await self._waker.wait(timeout)


if TYPE_CHECKING:
    # mypy proves the backend implements the protocol (a runtime isinstance checks names only).
    from taskyard.backends.protocol import Backend

    _backend: type[Backend] = MemoryBackend
