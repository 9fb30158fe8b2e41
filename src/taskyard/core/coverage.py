"""Which tasks the live workers can run: per-task job counts from the store, the task names
workers register, and the one rule that calls a task's waiting jobs unclaimable.

Two apps (or two versions of one app) may share a store; a worker claims only jobs of the
tasks its app registers, so a job whose task no live worker knows waits, visibly, until one
does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

__all__ = (
    "WORKER_LIVE_SECONDS",
    "TaskCounts",
    "TaskCoverage",
    "task_coverage",
)

#: A worker counts as live while its last heartbeat is younger than this (workers beat every
#: few seconds; the Reaper unregisters them after two silent minutes).
WORKER_LIVE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """Active jobs of one task in one queue, as the store counts them (`task_counts`).

    `waiting_since` is the earliest `run_at` of its due jobs (pending, or scheduled with
    `run_at <= now`), None when none is due.
    """

    queue: str
    task: str
    pending: int = 0
    scheduled: int = 0
    running: int = 0
    waiting_since: datetime | None = None


class _Registered(Protocol):
    """What the rule reads of a registered worker (`WorkerInfo`, or the alerter's view)."""

    @property
    def id(self) -> str: ...

    @property
    def tasks(self) -> tuple[str, ...]: ...

    @property
    def last_heartbeat(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class TaskCoverage:
    """One task name: its active jobs over every queue and the live workers that know it."""

    task: str
    pending: int = 0
    scheduled: int = 0
    running: int = 0
    waiting_since: datetime | None = None
    queues: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()

    @property
    def waiting(self) -> int:
        """Jobs not yet started: pending and scheduled."""
        return self.pending + self.scheduled

    @property
    def is_unclaimable(self) -> bool:
        """Jobs of this task wait and no live worker knows the task: none will claim them."""
        return self.waiting > 0 and not self.workers

    def waited(self, now: datetime) -> float:
        """Seconds the oldest due job has waited (0 when none is due)."""
        if self.waiting_since is None:
            return 0.0
        return max((now - self.waiting_since).total_seconds(), 0.0)


def task_coverage(
    counts: Iterable[TaskCounts],
    workers: Iterable[_Registered],
    *,
    now: datetime,
    worker_timeout: float = WORKER_LIVE_SECONDS,
) -> list[TaskCoverage]:
    """Every task seen in active jobs or on live workers, by name: its counts summed over
    queues and the ids of the live workers (heartbeat within `worker_timeout`) that know it.
    """
    cutoff = now - timedelta(seconds=worker_timeout)
    live = [w for w in workers if w.last_heartbeat >= cutoff]
    knowers: dict[str, list[str]] = {}
    for worker in sorted(live, key=lambda w: w.id):
        for task in worker.tasks:
            knowers.setdefault(task, []).append(worker.id)
    totals: dict[str, list[int]] = {}
    since: dict[str, datetime] = {}
    queues: dict[str, set[str]] = {}
    for c in counts:
        cell = totals.setdefault(c.task, [0, 0, 0])
        cell[0] += c.pending
        cell[1] += c.scheduled
        cell[2] += c.running
        queues.setdefault(c.task, set()).add(c.queue)
        if c.waiting_since is not None and (c.task not in since or c.waiting_since < since[c.task]):
            since[c.task] = c.waiting_since
    return [
        TaskCoverage(
            task=task,
            pending=totals.get(task, [0, 0, 0])[0],
            scheduled=totals.get(task, [0, 0, 0])[1],
            running=totals.get(task, [0, 0, 0])[2],
            waiting_since=since.get(task),
            queues=tuple(sorted(queues.get(task, ()))),
            workers=tuple(knowers.get(task, ())),
        )
        for task in sorted(set(totals) | set(knowers))
    ]
