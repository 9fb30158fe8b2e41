"""The memory backend's cluster bookkeeping: leader leases and the worker registry."""

from __future__ import annotations

from datetime import datetime, timedelta

from taskyard.clock import utcnow
from taskyard.core.cluster import LeaderInfo, WorkerInfo

from .state import MemoryState

__all__ = ("ClusterMixin",)


class ClusterMixin(MemoryState):
    """Leadership and workers."""

    async def leader_attempt_elect(
        self, *, name: str, holder: str, ttl: float, now: datetime | None = None
    ) -> bool:
        now = now or utcnow()
        expires = now + timedelta(seconds=ttl)
        with self._lock:
            current = self._leaders.get(name)
            if current is not None and current.holder == holder and current.expires_at > now:
                self._leaders[name] = LeaderInfo(name, holder, current.elected_at, expires)
                return True
            if current is None or current.expires_at <= now:
                self._leaders[name] = LeaderInfo(name, holder, now, expires)
                return True
            return False

    async def leader_resign(self, *, name: str, holder: str) -> None:
        with self._lock:
            current = self._leaders.get(name)
            if current is not None and current.holder == holder:
                del self._leaders[name]

    async def leader_get(self, *, name: str, now: datetime | None = None) -> LeaderInfo | None:
        now = now or utcnow()
        current = self._leaders.get(name)
        return current if current is not None and current.expires_at > now else None

    # -- workers -----------------------------------------------------------------------------
    async def worker_heartbeat(self, *, info: WorkerInfo) -> None:
        with self._lock:
            self._workers[info.id] = info

    async def worker_remove(self, *, worker_id: str) -> None:
        with self._lock:
            self._workers.pop(worker_id, None)

    async def workers_list(self) -> list[WorkerInfo]:
        with self._lock:
            return [self._workers[k] for k in sorted(self._workers)]

    async def workers_prune(self, *, older_than: datetime) -> int:
        with self._lock:
            stale = [k for k, w in self._workers.items() if w.last_heartbeat < older_than]
            for key in stale:
                del self._workers[key]
        return len(stale)
