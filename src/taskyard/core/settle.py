"""How a run ends in the store: one typed outcome per job a worker holds, written by the
backend's one owned-write method, `Backend.jobs_settle`.

A worker that claimed a job holds it through the claim's lease token. Whatever the run
produced, the write that ends it is the same operation: "if this token still owns this
running job, move it to the state the outcome says". The outcome kinds and their fields are
defined here once; backends only carry out the conditional write (SQL, Lua), and every
decision (retry time, rescue or fail) is made before, in `core` or by the worker.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskyard.core.job import AttemptError, Job, JobStatus, Progress, rescue_decision

__all__ = ("Settle", "SettleKind", "Settled")


class SettleKind(enum.StrEnum):
    """What became of a run (the state each kind writes is in `Settle`'s constructors)."""

    COMPLETED = "completed"
    FAILED = "failed"
    SNOOZED = "snoozed"
    CANCELLED = "cancelled"
    RELEASED = "released"
    RESCUED = "rescued"


@dataclass(frozen=True, slots=True)
class Settle:
    """One outcome for a job held by `lease_token`. Build it with a constructor named after
    its kind; the fields a kind does not use stay at their defaults."""

    kind: SettleKind
    job_id: str
    lease_token: str
    result: Any = None
    progress: Progress | None = None
    error: AttemptError | None = None
    retry_at: datetime | None = None
    run_at: datetime | None = None
    reason: str = ""

    @classmethod
    def completed(
        cls, job_id: str, lease_token: str, result: Any = None, progress: Progress | None = None
    ) -> Settle:
        """running → completed, storing `result` and `finished_at`. `progress`, when given, is
        the handler's last report (progress writes are coalesced, it may not be stored yet)."""
        return cls(SettleKind.COMPLETED, job_id, lease_token, result=result, progress=progress)

    @classmethod
    def failed(cls, job_id: str, lease_token: str, error: AttemptError, retry_at: datetime | None) -> Settle:
        """A failed attempt, `error` appended: scheduled at `retry_at` when set, else failed
        with `finished_at` (no attempts left, or not retryable)."""
        return cls(SettleKind.FAILED, job_id, lease_token, error=error, retry_at=retry_at)

    @classmethod
    def snoozed(cls, job_id: str, lease_token: str, run_at: datetime) -> Settle:
        """`RetryLater`: scheduled at `run_at`, `max_attempts + 1` (a snooze does not use up
        the retry budget)."""
        return cls(SettleKind.SNOOZED, job_id, lease_token, run_at=run_at)

    @classmethod
    def cancelled(cls, job_id: str, lease_token: str, reason: str) -> Settle:
        """running → cancelled once the handler has stopped (requested, or `Cancel` raised)."""
        return cls(SettleKind.CANCELLED, job_id, lease_token, reason=reason)

    @classmethod
    def released(cls, job_id: str, lease_token: str) -> Settle:
        """Handed back untouched (shutdown, a task this worker does not know): pending,
        `attempt - 1` (the interrupted run is not counted)."""
        return cls(SettleKind.RELEASED, job_id, lease_token)

    @classmethod
    def rescued(cls, job_id: str, lease_token: str, reason: str) -> Settle:
        """The worker saw the run lost without the handler failing (its child process died):
        `core.job.rescue_decision(job, now, reason)` — pending with `attempt - 1` and
        `rescues + 1`, or failed past `max_rescues`; a `WorkerLost` error either way."""
        return cls(SettleKind.RESCUED, job_id, lease_token, reason=reason)

    def applied_to(self, job: Job, now: datetime) -> Job:
        """`job` (running, owned by this outcome's token) after the write this outcome's kind
        says, at `now`: out of running, the lease cleared. The stores that keep whole jobs
        (memory, SQLite) write this; SQL and Lua write the same fields."""
        S = JobStatus
        off = job.replace(lease_token=None, lease_expires_at=None, cancel_requested=False)
        match self.kind:
            case SettleKind.COMPLETED:
                progress = job.progress if self.progress is None else self.progress
                return off.replace(status=S.COMPLETED, result=self.result, finished_at=now, progress=progress)
            case SettleKind.FAILED:
                assert self.error is not None
                errors = (*job.errors, self.error)
                if self.retry_at is None:
                    return off.replace(status=S.FAILED, errors=errors, finished_at=now)
                return off.replace(status=S.SCHEDULED, errors=errors, run_at=self.retry_at)
            case SettleKind.SNOOZED:
                assert self.run_at is not None
                return off.replace(status=S.SCHEDULED, run_at=self.run_at, max_attempts=job.max_attempts + 1)
            case SettleKind.CANCELLED:
                return off.replace(status=S.CANCELLED, finished_at=now, result={"cancelled": self.reason})
            case SettleKind.RELEASED:
                return off.replace(status=S.PENDING, attempt=max(job.attempt - 1, 0), worker_id=None)
            case SettleKind.RESCUED:
                return rescue_decision(job, now, self.reason).apply(job, now)


@dataclass(frozen=True, slots=True)
class Settled:
    """The answer for one `Settle`: `owned` False when its token no longer owned a running
    job (nothing was written: the lease was lost). `job` is the job after the write; a
    backend may leave it None for `COMPLETED` (the caller knows the result it wrote)."""

    job_id: str
    owned: bool
    job: Job | None = None
