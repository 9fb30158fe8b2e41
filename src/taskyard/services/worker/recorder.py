"""`Recorder`: how a worker records the end of each run. It turns the run's `Outcome` into
the write that ends it (`Settle`: retry and snooze times decided here, on the store's
clock), hands it to the `Completer`, and once written reports it: per-minute stats, the job
log line and `subscribe_jobs` listeners (through the worker's `emit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskyard.app import Taskyard
from taskyard.core.job import Job, JobStatus, Progress
from taskyard.core.settle import Settle, Settled, SettleKind
from taskyard.services.store_clock import StoreClock
from taskyard.services.worker.completer import Completer
from taskyard.services.worker.executor import UNKNOWN_TASK, Outcome, OutcomeKind
from taskyard.services.worker.stats import RunStats

__all__ = ("JobOutcome", "Recorder")

log = logging.getLogger("taskyard.worker")


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """Told to `subscribe_jobs` listeners after each run.

    `outcome`: completed | failed | retrying | snoozed | cancelled | lost | released |
    rescued (its child process died; it runs again).
    """

    job: Job
    outcome: str
    duration: float


class Recorder:
    """Owned by one worker; `record()` is called once per run."""

    def __init__(
        self,
        app: Taskyard,
        *,
        completer: Completer,
        stats: RunStats,
        store_clock: StoreClock,
        last_progress: Callable[[str], Progress | None],
        emit: Callable[[Job, str, float], None],
    ) -> None:
        """`last_progress(job_id)` is the job's latest progress report (written or not);
        `emit(job, outcome, duration)` tells the worker's log and listeners."""
        self.app = app
        self.completer = completer
        self.stats = stats
        self.store_clock = store_clock
        self._last_progress = last_progress
        self._emit = emit
        #: Retry and snooze times of jobs this worker scheduled (a burst worker waits for them).
        self.retry_watch: dict[str, datetime] = {}

    async def record(self, job: Job, outcome: Outcome, duration: float) -> None:
        """Write how `job`'s run ended and report it; waits for the write, except for a
        completion (its slot frees at once, the completer writes completions in batches)."""
        if outcome.kind is OutcomeKind.LOST:
            self._lost(job, duration)
            return
        if outcome.kind is OutcomeKind.RELEASED and outcome.reason == UNKNOWN_TASK:
            log.warning(
                "job %s has task %r, which this worker does not know; handed back untouched",
                job.id, job.task, extra={"job_id": job.id},
            )
        settle = self._settle_of(job, outcome)
        answer = self.completer.submit(settle)
        if settle.kind is SettleKind.COMPLETED:
            # Not waited for: the slot frees at once, the completer writes completions in batches.
            answer.add_done_callback(lambda done: self._completed(job, settle, duration, done))
            return
        self._settled(job, settle, await answer, duration)

    def _settle_of(self, job: Job, outcome: Outcome) -> Settle:
        """The write that ends this run; retry and snooze times are decided here, on the
        store's clock (every claimer compares them)."""
        token = job.lease_token or ""
        now = self.store_clock.now()
        match outcome.kind:
            case OutcomeKind.COMPLETED:
                # Its last progress report, maybe not yet written.
                return Settle.completed(job.id, token, outcome.result, self._last_progress(job.id))
            case OutcomeKind.FAILED:
                assert outcome.error is not None
                delay = (
                    self.app.get_task(job.task).retry.delay_after(job.attempt)
                    if outcome.retryable and job.task in self.app.tasks
                    else None
                )
                retry_at = now + timedelta(seconds=delay) if delay is not None else None
                return Settle.failed(job.id, token, outcome.error, retry_at)
            case OutcomeKind.RETRY_LATER:
                return Settle.snoozed(job.id, token, now + timedelta(seconds=outcome.delay))
            case OutcomeKind.CANCELLED:
                return Settle.cancelled(job.id, token, outcome.reason)
            case OutcomeKind.RELEASED:
                return Settle.released(job.id, token)
            case OutcomeKind.CRASHED:
                return Settle.rescued(job.id, token, outcome.reason)
        raise AssertionError(f"no write for outcome {outcome.kind}")

    def _lost(self, job: Job, duration: float) -> None:
        log.warning("job %s lost its lease; its outcome is discarded", job.id, extra={"job_id": job.id})
        self._emit(job, "lost", duration)

    def _completed(self, job: Job, settle: Settle, duration: float, answer: asyncio.Future[Settled]) -> None:
        if answer.cancelled() or answer.exception() is not None or not answer.result().owned:
            self._emit(job, "lost", duration)  # a failed batch was logged by the completer
            return
        self.stats.count(job.queue, completed=1, task=job.task)
        self._emit(job.replace(status=JobStatus.COMPLETED, result=settle.result), "completed", duration)

    def _settled(self, job: Job, settle: Settle, settled: Settled, duration: float) -> None:
        if settle.kind is SettleKind.RELEASED:
            self._emit(job, "released", duration)  # a lost lease: someone else has it anyway
            return
        if not settled.owned:
            self._lost(job, duration)
            return
        updated = settled.job or job
        match settle.kind:
            case SettleKind.FAILED:
                assert settle.error is not None
                retry_at = settle.retry_at
                if retry_at is not None:
                    self.retry_watch[job.id] = retry_at
                    self._emit(updated, "retrying", duration)
                else:
                    self.stats.count(job.queue, failed=1, task=job.task)
                    self._emit(updated, "failed", duration)
                # A failure for good is an ERROR (error trackers such as Sentry's logging
                # integration make an event of it, with the fields); a retry only a WARNING.
                log.log(
                    logging.WARNING if retry_at else logging.ERROR,
                    "job %s (%s) attempt %d failed: %s%s", job.id, job.task, job.attempt,
                    settle.error.message,
                    f"; retry at {retry_at.isoformat()}" if retry_at else "; no attempts left",
                    extra={
                        "job_id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempt,
                        "error_type": settle.error.type, "traceback": settle.error.traceback,
                    },
                )
            case SettleKind.SNOOZED:
                assert settle.run_at is not None
                self.retry_watch[job.id] = settle.run_at
                self._emit(updated, "snoozed", duration)
            case SettleKind.CANCELLED:
                self._emit(updated, "cancelled", duration)
            case SettleKind.RESCUED:
                failed = updated.status is JobStatus.FAILED
                if failed:
                    self.stats.count(job.queue, failed=1, task=job.task)
                self._emit(updated, "failed" if failed else "rescued", duration)
                log.warning(
                    "job %s (%s): %s; %s", job.id, job.task, settle.reason,
                    "failed (max_rescues)" if failed else "it will run again",
                    extra={"job_id": job.id},
                )
