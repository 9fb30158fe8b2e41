"""The memory backend's worker side: claims (by priority across queues, within concurrency
and rate limits), heartbeats, progress, and the one owned write, `jobs_settle`.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from taskyard.clock import utcnow
from taskyard.core.job import Job, JobStatus, LeaseReport, Progress
from taskyard.core.queue import claim_budget
from taskyard.core.settle import Settle, Settled
from taskyard.errors import LeaseLost

from .graph import GraphState
from .state import QueueState, new_lease_token

__all__ = ("ClaimsMixin",)

S = JobStatus


class ClaimsMixin(GraphState):
    """Claim jobs and record what became of them, fenced by lease tokens."""

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
                best: tuple[tuple[int, float, str], QueueState] | None = None
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

    def _budget(self, state: QueueState, now: datetime) -> int:
        settings, rate = state.settings, state.settings.rate_limit
        budget, window = claim_budget(
            concurrency=settings.concurrency, running=state.running,
            rate=None if rate is None else rate.limit, period=None if rate is None else rate.period,
            window_start=state.window_start, window_count=state.window_count, at=now.timestamp(),
        )
        if window is not None and window != state.window_start:
            state.window_start, state.window_count = window, 0
        return budget

    def _clean_top(
        self,
        state: QueueState,
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

    def _owned(self, job_id: str, token: str) -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or job.status is not S.RUNNING or job.lease_token != token:
            return None
        return job

    async def jobs_extend_leases(
        self, *, leases: Mapping[str, str], lease: float, now: datetime | None = None
    ) -> LeaseReport:
        now = now or utcnow()
        expires = now + timedelta(seconds=lease)
        lost: set[str] = set()
        cancel: set[str] = set()
        with self._lock:
            for job_id, token in leases.items():
                job = self._owned(job_id, token)
                if job is None:
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
            if job is None:
                raise LeaseLost.of_job(job_id)
            self._store(job.replace(progress=progress))

    async def jobs_settle(
        self, *, outcomes: Sequence[Settle], now: datetime | None = None
    ) -> list[Settled]:
        now = now or utcnow()
        answers: list[Settled] = []
        with self._lock:
            for outcome in outcomes:
                job = self._owned(outcome.job_id, outcome.lease_token)
                if job is None:
                    answers.append(Settled(outcome.job_id, owned=False))
                    continue
                after = self._leave_running(job, outcome.applied_to(job, now))
                answers.append(Settled(outcome.job_id, owned=True, job=after))
        if any(a.job is not None and (a.job.status is S.PENDING or a.job.workflow_id) for a in answers):
            self._waker.notify()
        return answers
