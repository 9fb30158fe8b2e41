"""The memory backend: the executable specification of the `Backend` protocol.

Everything lives in dicts and heaps of this process; nothing survives a restart. Each
operation runs under one lock without awaiting, so it is atomic even when the sync facade
and a worker use the backend from different threads.
"""

from __future__ import annotations

import heapq
import os
import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from taskyard.backends.protocol import UNSET
from taskyard.backends.wakeup import Waker
from taskyard.clock import utcnow
from taskyard.core.cluster import LeaderInfo, WorkerInfo
from taskyard.core.coverage import TaskCounts
from taskyard.core.job import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    AttemptError,
    Completion,
    Job,
    JobDraft,
    JobFilter,
    JobPage,
    JobStatus,
    LeaseReport,
    Progress,
    RescueReport,
    cancelled_job,
    check_prunable,
    rescue_decision,
    retried_job,
)
from taskyard.core.queue import QueueCounts, QueueSettings, RateLimit, StatsRow, rate_window_start
from taskyard.core.schedule import Schedule
from taskyard.errors import InvalidTransitionError, JobNotFound, LeaseLost

__all__ = ("MemoryBackend", "new_lease_token")

S = JobStatus


def new_lease_token() -> str:
    """A fresh, unguessable lease token."""
    return os.urandom(12).hex()


class _QueueState:
    __slots__ = ("ready", "running", "settings", "window_count", "window_start")

    def __init__(self, name: str) -> None:
        self.settings = QueueSettings(name=name)
        self.ready: list[tuple[int, float, str]] = []  # (-priority, run_at, id); lazily cleaned
        self.running = 0
        self.window_start = 0.0
        self.window_count = 0


class MemoryBackend:
    """In-process, non-durable backend (`memory://`)."""

    shared_across_loops = True  # one process-wide store behind a lock

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._waker = Waker()
        self._jobs: dict[str, Job] = {}
        self._unique: dict[str, str] = {}
        self._queues: dict[str, _QueueState] = {}
        self._scheduled: list[tuple[float, str]] = []  # (run_at, id); lazily cleaned
        self._stats: dict[tuple[datetime, str], list[int]] = {}
        self._schedules: dict[str, Schedule] = {}
        self._leaders: dict[str, LeaderInfo] = {}
        self._workers: dict[str, WorkerInfo] = {}

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

    # -- helpers ---------------------------------------------------------------------------
    def _queue(self, name: str) -> _QueueState:
        state = self._queues.get(name)
        if state is None:
            state = self._queues[name] = _QueueState(name)
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

    def _owned(self, job_id: str, token: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.status is not S.RUNNING or job.lease_token != token:
            raise LeaseLost.of_job(job_id)
        return job

    def _leave_running(self, job: Job) -> None:
        self._queue(job.queue).running -= 1

    def _release_unique(self, job: Job) -> None:
        if job.unique_key and self._unique.get(job.unique_key) == job.id:
            del self._unique[job.unique_key]

    def _store(self, job: Job) -> Job:
        self._jobs[job.id] = job
        return job

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

    # -- jobs: writes by clients -------------------------------------------------------------
    async def job_enqueue_many(
        self, *, drafts: Sequence[JobDraft], now: datetime | None = None
    ) -> list[Job]:
        now = now or utcnow()
        out: list[Job] = []
        with self._lock:
            for d in drafts:
                existing = self._jobs.get(d.id)
                if existing is None and d.unique_key:
                    holder = self._unique.get(d.unique_key)
                    existing = self._jobs.get(holder) if holder else None
                if existing is not None:
                    out.append(existing)
                    continue
                job = d.to_job(now)
                self._store(job)
                self._queue(job.queue)  # a queue with only scheduled jobs is still listed
                if d.unique_key:
                    self._unique[d.unique_key] = job.id
                self._place(job)
                out.append(job)
        self._waker.notify()
        return out

    async def job_get(self, *, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    async def jobs_list(
        self, *, filter: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        with self._lock:
            jobs = [j for j in self._jobs.values() if _matches(j, filter)]
        jobs.sort(key=lambda j: j.id, reverse=True)
        if cursor:
            jobs = [j for j in jobs if j.id < cursor]
        page = jobs[:limit]
        next_cursor = page[-1].id if len(jobs) > limit and page else None
        return JobPage(jobs=page, next_cursor=next_cursor)

    async def job_cancel(self, *, job_id: str, now: datetime | None = None) -> Job:
        now = now or utcnow()
        with self._lock:
            job = self._get(job_id)
            after = cancelled_job(job, now)
            if after is job:
                return job
            if after.status is S.CANCELLED:
                self._release_unique(job)
            return self._store(after)

    def _retry_one(self, job: Job, now: datetime) -> Job:
        after = retried_job(job, now)
        holder = self._unique.get(job.unique_key) if job.unique_key else None
        if holder is not None and holder != job.id:
            raise InvalidTransitionError.unique_key_held(job.id, job.unique_key, holder)
        job = self._store(after)
        if job.unique_key:
            self._unique[job.unique_key] = job.id
        self._make_ready(job)
        return job

    async def job_retry(self, *, job_id: str, now: datetime | None = None) -> Job:
        now = now or utcnow()
        with self._lock:
            job = self._retry_one(self._get(job_id), now)
        self._waker.notify()
        return job

    async def jobs_retry_failed(
        self, *, queue: str | None = None, now: datetime | None = None
    ) -> int:
        now = now or utcnow()
        with self._lock:
            targets = [
                j for j in self._jobs.values() if j.status is S.FAILED and queue in (None, j.queue)
            ]
            retried = 0
            for job in sorted(targets, key=lambda j: j.id):
                # A job whose unique key another active job holds stays failed.
                if job.unique_key and self._unique.get(job.unique_key, job.id) != job.id:
                    continue
                self._retry_one(job, now)
                retried += 1
        if retried:
            self._waker.notify()
        return retried

    # -- jobs: the worker's side -------------------------------------------------------------
    async def job_claim(
        self,
        *,
        queues: Sequence[str] | None,
        limit: int,
        worker_id: str,
        lease: float,
        now: datetime | None = None,
        tasks: Collection[str] | None = None,
    ) -> list[Job]:
        now = now or utcnow()
        now_ts = now.timestamp()
        expires = now + timedelta(seconds=lease)
        claimed: list[Job] = []
        wanted = None if tasks is None else frozenset(tasks)
        if wanted is not None and not wanted:
            return []
        # Heap entries of other tasks, popped to look past them and pushed back afterwards.
        skipped: dict[str, list[tuple[int, float, str]]] = {}
        with self._lock:
            self._promote(now_ts)
            names = list(self._queues) if queues is None else list(queues)
            budgets: dict[str, int] = {}
            for name in names:
                state = self._queues.get(name)
                if state is None or state.settings.paused or not state.ready:
                    continue
                budgets[name] = self._budget(state, now)
            while len(claimed) < limit:
                best: tuple[tuple[int, float, str], _QueueState] | None = None
                for name, budget in budgets.items():
                    if budget <= 0:
                        continue
                    state = self._queues[name]
                    top = self._clean_top(state, wanted, skipped.setdefault(name, []))
                    if top is not None and (best is None or top < best[0]):
                        best = (top, state)
                if best is None:
                    break
                _, state = best
                _, _, job_id = heapq.heappop(state.ready)
                job = self._jobs[job_id]
                job = self._store(
                    job.replace(
                        status=S.RUNNING,
                        attempt=job.attempt + 1,
                        started_at=now,
                        worker_id=worker_id,
                        lease_token=new_lease_token(),
                        lease_expires_at=expires,
                        cancel_requested=False,
                    )
                )
                state.running += 1
                if state.settings.rate_limit is not None:
                    state.window_count += 1
                budgets[state.settings.name] -= 1
                claimed.append(job)
            for name, entries in skipped.items():
                ready = self._queues[name].ready
                for entry in entries:
                    heapq.heappush(ready, entry)
        return claimed

    def _budget(self, state: _QueueState, now: datetime) -> int:
        budget = 1 << 30
        settings = state.settings
        if settings.concurrency is not None:
            budget = min(budget, settings.concurrency - state.running)
        if settings.rate_limit is not None:
            window = rate_window_start(now.timestamp(), settings.rate_limit.period)
            if window != state.window_start:
                state.window_start, state.window_count = window, 0
            budget = min(budget, settings.rate_limit.limit - state.window_count)
        return budget

    def _clean_top(
        self,
        state: _QueueState,
        wanted: frozenset[str] | None = None,
        skipped: list[tuple[int, float, str]] | None = None,
    ) -> tuple[int, float, str] | None:
        """The queue's best pending entry (of a `wanted` task); stale entries are dropped,
        entries of other tasks moved to `skipped`."""
        while state.ready:
            top = state.ready[0]
            job = self._jobs.get(top[2])
            if job is not None and job.status is S.PENDING and -job.priority == top[0]:
                if wanted is None or job.task in wanted:
                    return top
                assert skipped is not None
                skipped.append(top)
            heapq.heappop(state.ready)
        return None

    async def jobs_extend_leases(
        self, *, leases: Mapping[str, str], lease: float, now: datetime | None = None
    ) -> LeaseReport:
        now = now or utcnow()
        expires = now + timedelta(seconds=lease)
        lost: set[str] = set()
        cancel: set[str] = set()
        with self._lock:
            for job_id, token in leases.items():
                job = self._jobs.get(job_id)
                if job is None or job.status is not S.RUNNING or job.lease_token != token:
                    lost.add(job_id)
                    continue
                self._store(job.replace(lease_expires_at=expires))
                if job.cancel_requested:
                    cancel.add(job_id)
        return LeaseReport(lost=frozenset(lost), cancel_requested=frozenset(cancel))

    async def job_set_progress(
        self, *, job_id: str, lease_token: str, progress: Progress, now: datetime | None = None
    ) -> None:
        with self._lock:
            job = self._owned(job_id, lease_token)
            self._store(job.replace(progress=progress))

    def _finish(self, job: Job, **changes: Any) -> Job:
        self._leave_running(job)
        if changes.get("status") in FINISHED_STATUSES:
            self._release_unique(job)
        return self._store(
            job.replace(lease_token=None, lease_expires_at=None, cancel_requested=False, **changes)
        )

    async def jobs_complete(
        self, *, completions: Sequence[Completion], now: datetime | None = None
    ) -> list[str]:
        now = now or utcnow()
        lost: list[str] = []
        with self._lock:
            for c in completions:
                job = self._jobs.get(c.job_id)
                if job is None or job.status is not S.RUNNING or job.lease_token != c.lease_token:
                    lost.append(c.job_id)
                    continue
                final = {"progress": c.progress} if c.progress is not None else {}
                self._finish(job, status=S.COMPLETED, result=c.result, finished_at=now, **final)
        return lost

    async def job_fail(
        self,
        *,
        job_id: str,
        lease_token: str,
        error: AttemptError,
        retry_at: datetime | None,
        now: datetime | None = None,
    ) -> Job:
        now = now or utcnow()
        with self._lock:
            job = self._owned(job_id, lease_token)
            errors = (*job.errors, error)
            if retry_at is None:
                return self._finish(job, status=S.FAILED, errors=errors, finished_at=now)
            job = self._finish(job, status=S.SCHEDULED, errors=errors, run_at=retry_at)
            self._place(job)
            return job

    async def job_snooze(
        self, *, job_id: str, lease_token: str, run_at: datetime, now: datetime | None = None
    ) -> Job:
        with self._lock:
            job = self._owned(job_id, lease_token)
            job = self._finish(
                job, status=S.SCHEDULED, run_at=run_at, max_attempts=job.max_attempts + 1
            )
            self._place(job)
        return job

    async def job_finish_cancelled(
        self, *, job_id: str, lease_token: str, reason: str, now: datetime | None = None
    ) -> Job:
        now = now or utcnow()
        with self._lock:
            job = self._owned(job_id, lease_token)
            return self._finish(
                job, status=S.CANCELLED, finished_at=now, result={"cancelled": reason}
            )

    async def job_release(
        self, *, job_id: str, lease_token: str, now: datetime | None = None
    ) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status is not S.RUNNING or job.lease_token != lease_token:
                return
            job = self._finish(
                job, status=S.PENDING, attempt=max(job.attempt - 1, 0), worker_id=None
            )
            self._make_ready(job)
        self._waker.notify()

    async def job_rescue(
        self, *, job_id: str, lease_token: str, reason: str, now: datetime | None = None
    ) -> Job:
        now = now or utcnow()
        with self._lock:
            job = self._owned(job_id, lease_token)
            decision = rescue_decision(job, now, reason)
            after = decision.apply(job, now)
            job = self._finish(
                job, status=after.status, attempt=after.attempt, rescues=after.rescues,
                errors=after.errors, finished_at=after.finished_at, worker_id=after.worker_id,
            )
            if decision.status is S.FAILED:
                return job
            self._make_ready(job)
        self._waker.notify()
        return self._jobs[job_id]

    # -- jobs: maintenance -------------------------------------------------------------------
    async def jobs_rescue_expired(self, *, now: datetime | None = None) -> RescueReport:
        now = now or utcnow()
        rescued: list[str] = []
        failed: list[str] = []
        with self._lock:
            expired = [
                j
                for j in self._jobs.values()
                if j.status is S.RUNNING
                and j.lease_expires_at is not None
                and j.lease_expires_at < now
            ]
            for job in expired:
                decision = rescue_decision(job, now)
                after = decision.apply(job, now)
                self._finish(
                    job, status=after.status, attempt=after.attempt, rescues=after.rescues,
                    errors=after.errors, finished_at=after.finished_at, worker_id=after.worker_id,
                )
                if decision.status is S.FAILED:
                    failed.append(job.id)
                else:
                    self._make_ready(self._jobs[job.id])
                    rescued.append(job.id)
        if rescued:
            self._waker.notify()
        return RescueReport(rescued=tuple(rescued), failed=tuple(failed))

    async def jobs_promote_due(self, *, now: datetime | None = None) -> int:
        now = now or utcnow()
        with self._lock:
            moved = self._promote(now.timestamp())
        if moved:
            self._waker.notify()
        return moved

    async def jobs_prune(
        self,
        *,
        status: JobStatus,
        keep_last: int | None = None,
        older_than: datetime | None = None,
        queue: str | None = None,
        exclude_queues: Collection[str] = (),
    ) -> int:
        check_prunable(status)
        with self._lock:
            skip = frozenset(exclude_queues)
            jobs = [
                j for j in self._jobs.values()
                if j.status is status and (queue is None or j.queue == queue) and j.queue not in skip
            ]
            jobs.sort(
                key=lambda j: (j.finished_at or datetime.min.replace(tzinfo=UTC), j.id),
                reverse=True,
            )
            doomed: set[str] = set()
            if keep_last is not None:
                doomed.update(j.id for j in jobs[keep_last:])
            if older_than is not None:
                doomed.update(j.id for j in jobs if j.finished_at and j.finished_at < older_than)
            for job_id in doomed:
                del self._jobs[job_id]
        return len(doomed)

    # -- queues ------------------------------------------------------------------------------
    async def queue_counts(self) -> list[QueueCounts]:
        with self._lock:
            counts: dict[str, dict[JobStatus, int]] = {name: {} for name in self._queues}
            for job in self._jobs.values():
                per = counts.setdefault(job.queue, {})
                per[job.status] = per.get(job.status, 0) + 1
        return [QueueCounts(queue=name, counts=counts[name]) for name in sorted(counts)]

    async def task_counts(self, *, now: datetime | None = None) -> list[TaskCounts]:
        now = now or utcnow()
        cells: dict[tuple[str, str], list[Any]] = {}
        with self._lock:
            for job in self._jobs.values():
                if job.status not in ACTIVE_STATUSES:
                    continue
                cell = cells.setdefault((job.queue, job.task), [0, 0, 0, None])
                cell[(S.PENDING, S.SCHEDULED, S.RUNNING).index(job.status)] += 1
                due = job.status is S.PENDING or (job.status is S.SCHEDULED and job.run_at <= now)
                if due and (cell[3] is None or job.run_at < cell[3]):
                    cell[3] = job.run_at
        return [
            TaskCounts(queue=q, task=t, pending=c[0], scheduled=c[1], running=c[2], waiting_since=c[3])
            for (q, t), c in sorted(cells.items())
        ]

    async def queue_get(self, *, queue: str) -> QueueSettings:
        state = self._queues.get(queue)
        return state.settings if state else QueueSettings(name=queue)

    async def queues_list(self) -> list[QueueSettings]:
        with self._lock:
            return [self._queues[name].settings for name in sorted(self._queues)]

    async def queue_update(
        self,
        *,
        queue: str,
        paused: bool = UNSET,
        concurrency: int | None = UNSET,
        rate_limit: RateLimit | None = UNSET,
    ) -> QueueSettings:
        with self._lock:
            state = self._queue(queue)
            old = state.settings
            state.settings = QueueSettings(
                name=queue,
                paused=old.paused if paused is UNSET else bool(paused),
                concurrency=old.concurrency if concurrency is UNSET else concurrency,
                rate_limit=old.rate_limit if rate_limit is UNSET else rate_limit,
            )
            settings = state.settings
        self._waker.notify()
        return settings

    # -- statistics --------------------------------------------------------------------------
    async def stats_record(self, *, rows: Sequence[StatsRow]) -> None:
        with self._lock:
            for row in rows:
                cell = self._stats.setdefault((row.minute, row.queue), [0, 0])
                cell[0] += row.completed
                cell[1] += row.failed

    async def stats_read(self, *, since: datetime) -> list[StatsRow]:
        with self._lock:
            rows = [
                StatsRow(minute=m, queue=q, completed=c[0], failed=c[1])
                for (m, q), c in self._stats.items()
                if m >= since
            ]
        rows.sort(key=lambda r: (r.minute, r.queue))
        return rows

    # -- schedules ---------------------------------------------------------------------------
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

    # -- leadership --------------------------------------------------------------------------
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

    # -- wake-ups ----------------------------------------------------------------------------
    async def wait_for_jobs(self, *, queues: Sequence[str] | None, timeout: float) -> None:
        await self._waker.wait(timeout)


def _matches(job: Job, f: JobFilter) -> bool:
    return (
        (f.queue is None or job.queue == f.queue)
        and (f.status is None or job.status is f.status)
        and (f.task is None or job.task == f.task)
        and (f.created_after is None or job.created_at >= f.created_after)
        and (f.created_before is None or job.created_at < f.created_before)
    )


if TYPE_CHECKING:
    # mypy proves the backend implements the protocol (a runtime isinstance checks names only).
    from taskyard.backends.protocol import Backend

    _backend: type[Backend] = MemoryBackend
