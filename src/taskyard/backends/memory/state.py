"""The memory backend's state: its dicts and heaps, one lock, and the helpers every part of the
backend shares to index a job as its status changes.
"""

from __future__ import annotations

import heapq
import os
import threading
from datetime import datetime
from typing import Any

from taskyard.backends.wakeup import Waker
from taskyard.core.cluster import LeaderInfo, WorkerInfo
from taskyard.core.job import FINISHED_STATUSES, Job, JobStatus
from taskyard.core.queue import QueueSettings
from taskyard.core.schedule import Schedule
from taskyard.errors import JobNotFound

__all__ = ("MemoryState", "QueueState", "new_lease_token")

S = JobStatus


def new_lease_token() -> str:
    """A fresh, unguessable lease token."""
    return os.urandom(12).hex()


class QueueState:
    """One queue: its settings, its ready heap, its running count and rate window."""

    __slots__ = ("ready", "running", "settings", "window_count", "window_start")

    def __init__(self, name: str) -> None:
        self.settings = QueueSettings(name=name)
        self.ready: list[tuple[int, float, str]] = []  # (-priority, run_at, id); lazily cleaned
        self.running = 0
        self.window_start = 0.0
        self.window_count = 0


class MemoryState:
    """Everything the memory backend stores. Each operation runs under `_lock` without
    awaiting, so it is atomic even when the sync facade and a worker use it from two threads."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._waker = Waker()
        self._jobs: dict[str, Job] = {}
        self._unique: dict[str, str] = {}
        self._queues: dict[str, QueueState] = {}
        self._scheduled: list[tuple[float, str]] = []  # (run_at, id); lazily cleaned
        #: (minute, queue, task) -> [completed, failed, {latency cell: count}]
        self._stats: dict[tuple[datetime, str, str], list[Any]] = {}
        self._depth: dict[tuple[datetime, str], int] = {}
        self._schedules: dict[str, Schedule] = {}
        self._leaders: dict[str, LeaderInfo] = {}
        self._workers: dict[str, WorkerInfo] = {}

    def _queue(self, name: str) -> QueueState:
        state = self._queues.get(name)
        if state is None:
            state = self._queues[name] = QueueState(name)
        return state

    def _make_ready(self, job: Job) -> None:
        heapq.heappush(
            self._queue(job.queue).ready, (-job.priority, job.run_at.timestamp(), job.id)
        )

    def _place(self, job: Job) -> None:
        """Index a job that just became scheduled or pending."""
        if job.status is S.SCHEDULED:
            heapq.heappush(self._scheduled, (job.run_at.timestamp(), job.id))
        elif job.status is S.PENDING:
            self._make_ready(job)

    def _get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def _release_unique(self, job: Job) -> None:
        if job.unique_key and self._unique.get(job.unique_key) == job.id:
            del self._unique[job.unique_key]

    def _store(self, job: Job) -> Job:
        self._jobs[job.id] = job
        return job

    def _leave_running(self, running: Job, after: Job) -> Job:
        """Store `after`, the running job `running` once out of running, and index it."""
        self._queue(running.queue).running -= 1
        if after.status in FINISHED_STATUSES:
            self._release_unique(running)
        self._store(after)
        self._place(after)
        if after.finished_at is not None:
            self._after_finish(after, after.finished_at)
        return after

    def _after_finish(self, job: Job, now: datetime) -> int:
        """Hook for what a job that just finished moves along (workflow steps: `GraphState`);
        returns how many jobs it made pending."""
        return 0

    def _promote(self, now_ts: float) -> int:
        moved = 0
        heap = self._scheduled
        while heap and heap[0][0] <= now_ts:
            _, job_id = heapq.heappop(heap)
            job = self._jobs.get(job_id)
            if job is None or job.status is not S.SCHEDULED or job.run_at.timestamp() > now_ts:
                continue
            job = self._store(job.replace(status=S.PENDING))
            self._make_ready(job)
            moved += 1
        return moved
