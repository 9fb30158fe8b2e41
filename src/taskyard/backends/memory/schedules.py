"""The memory backend's schedules: stored, confirmed, expired, due and fired."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from taskyard.clock import utcnow
from taskyard.core.schedule import Schedule

from .state import MemoryState

__all__ = ("SchedulesMixin",)


class SchedulesMixin(MemoryState):
    """Schedules by name and owner."""

    async def schedule_upsert(self, *, schedule: Schedule) -> Schedule:
        with self._lock:
            self._schedules[schedule.name] = schedule
        return schedule

    async def schedule_get(self, *, name: str) -> Schedule | None:
        return self._schedules.get(name)

    async def schedules_list(self, *, owner: str | None = None) -> list[Schedule]:
        with self._lock:
            found = [s for s in self._schedules.values() if owner is None or s.owner == owner]
        return sorted(found, key=lambda s: s.name)

    async def schedules_get(self, *, names: Sequence[str]) -> list[Schedule]:
        with self._lock:
            found = [self._schedules[n] for n in set(names) if n in self._schedules]
        return sorted(found, key=lambda s: s.name)

    async def schedules_confirm(self, *, names: Sequence[str], now: datetime | None = None) -> int:
        now = now or utcnow()
        confirmed = 0
        with self._lock:
            for name in set(names):
                schedule = self._schedules.get(name)
                if schedule is not None and schedule.source == "code":
                    self._schedules[name] = schedule.replace(confirmed_at=now)
                    confirmed += 1
        return confirmed

    async def schedules_expire_declared(self, *, grace: float, now: datetime | None = None) -> list[str]:
        now = now or utcnow()
        cutoff = now - timedelta(seconds=grace)
        expired = []
        with self._lock:
            for name, schedule in list(self._schedules.items()):
                if schedule.source != "code":
                    continue
                if schedule.confirmed_at is None:
                    self._schedules[name] = schedule.replace(confirmed_at=now)
                elif schedule.confirmed_at < cutoff:
                    del self._schedules[name]
                    expired.append(name)
        return sorted(expired)

    async def schedule_delete(self, *, name: str) -> bool:
        with self._lock:
            return self._schedules.pop(name, None) is not None

    async def schedules_replace_owner(self, *, owner: str, schedules: Sequence[Schedule]) -> None:
        with self._lock:
            for name in [n for n, s in self._schedules.items() if s.owner == owner]:
                del self._schedules[name]
            for schedule in schedules:
                self._schedules[schedule.name] = schedule

    async def schedules_delete_owner(self, *, owner: str) -> int:
        with self._lock:
            names = [n for n, s in self._schedules.items() if s.owner == owner]
            for name in names:
                del self._schedules[name]
        return len(names)

    async def schedules_due(self, *, now: datetime | None = None) -> list[Schedule]:
        now = now or utcnow()
        with self._lock:
            due = [
                s
                for s in self._schedules.values()
                if s.enabled and s.next_fire_at is not None and s.next_fire_at <= now
            ]
        return sorted(due, key=lambda s: (s.next_fire_at, s.name))

    async def schedule_record_fire(
        self, *, name: str, fire_time: datetime, next_fire_at: datetime | None
    ) -> bool:
        with self._lock:
            schedule = self._schedules.get(name)
            if schedule is None:
                return False
            if schedule.last_fire_at is not None and schedule.last_fire_at >= fire_time:
                return False
            self._schedules[name] = schedule.replace(
                last_fire_at=fire_time, next_fire_at=next_fire_at
            )
            return True
