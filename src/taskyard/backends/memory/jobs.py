"""The memory backend's jobs as clients and maintenance see them: enqueue, read, list,
cancel, manual retry, and the sweeps (rescue expired leases, promote due jobs, prune).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from taskyard.clock import utcnow
from taskyard.core.job import (
    DELETABLE_STATUSES,
    Job,
    JobDraft,
    JobFilter,
    JobPage,
    JobStatus,
    RescueReport,
    cancelled_job,
    check_prunable,
    rescue_decision,
    retried_job,
)
from taskyard.core.search import is_search_match
from taskyard.errors import InvalidTransitionError

from .graph import GraphState

__all__ = ("JobsMixin",)

S = JobStatus


class JobsMixin(GraphState):
    """Jobs written by clients and by the maintenance services."""

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
            after = self._store(after)
            woken = self._after_finish(after, now)
        if woken:
            self._waker.notify()
        return after

    def _retry_one(self, job: Job, now: datetime) -> Job:
        if job.workflow_id is not None:
            return self._retried_step(job, now)
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

    async def jobs_delete(self, *, ids: Sequence[str]) -> list[str]:
        with self._lock:
            doomed = [
                job_id for job_id in dict.fromkeys(ids)
                if (job := self._jobs.get(job_id)) is not None and job.status in DELETABLE_STATUSES
                and job.workflow_id is None  # steps go with their workflow (workflows_prune)
            ]
            for job_id in doomed:
                self._release_unique(self._jobs.pop(job_id))
        return doomed

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

    # -- maintenance -------------------------------------------------------------------------
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
                after = self._leave_running(job, rescue_decision(job, now).apply(job, now))
                (failed if after.status is S.FAILED else rescued).append(job.id)
        if rescued or failed:
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
                and j.workflow_id is None  # steps go with their workflow (workflows_prune)
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


def _matches(job: Job, f: JobFilter) -> bool:
    return (
        (f.queue is None or job.queue == f.queue)
        and (f.status is None or job.status is f.status)
        and (f.task is None or job.task == f.task)
        and (f.created_after is None or job.created_at >= f.created_after)
        and (f.created_before is None or job.created_at < f.created_before)
        and is_search_match(job, f.q)
    )
