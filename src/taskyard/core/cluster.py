"""Who is out there: registered workers and the leader lease."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ("LeaderInfo", "WorkerInfo")


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker process as it registers itself with every heartbeat. `tasks` are the task
    names it can run (it claims jobs of those only); a worker of a taskyard that predates
    this field registers none. `lost_threads`: handler threads of it that would not stop
    after their job was stopped (still running, never given another job)."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started_at: datetime
    last_heartbeat: datetime
    current_jobs: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    lost_threads: int = 0


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    """The current holder of a leadership lease."""

    name: str
    holder: str
    elected_at: datetime
    expires_at: datetime
