"""Jobs: the frozen `Job` record, its statuses and the one table of allowed transitions."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic

from typing_extensions import TypeVar

from taskyard.errors import InvalidTransitionError

__all__ = (
    "ACTIVE_STATUSES",
    "CANCELLABLE_STATUSES",
    "DEFAULT_MAX_RESCUES",
    "DELETABLE_STATUSES",
    "FINISHED_STATUSES",
    "MESSAGE_LIMIT",
    "RETRYABLE_STATUSES",
    "TRACEBACK_LIMIT",
    "TRANSITIONS",
    "AttemptError",
    "Job",
    "JobDraft",
    "JobFilter",
    "JobPage",
    "JobStatus",
    "LeaseReport",
    "Progress",
    "RescueDecision",
    "RescueReport",
    "cancelled_job",
    "check_prunable",
    "is_allowed",
    "rescue_decision",
    "retried_job",
    "storable_text",
)


class JobStatus(enum.StrEnum):
    """Where a job is in its life. `blocked` is a workflow step waiting for its parent steps."""

    BLOCKED = "blocked"
    SCHEDULED = "scheduled"
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = JobStatus

#: Every allowed (from, to) move, and what causes it. Backends, the API and the dashboard check it.
TRANSITIONS: Mapping[tuple[JobStatus, JobStatus], str] = {
    (S.SCHEDULED, S.PENDING): "due",
    (S.PENDING, S.RUNNING): "claim",
    (S.RUNNING, S.COMPLETED): "ok",
    (S.RUNNING, S.SCHEDULED): "error with attempts left, or RetryLater",
    (S.RUNNING, S.FAILED): "error with no attempts left, non-retryable, or its worker lost more than max_rescues times",
    (S.RUNNING, S.PENDING): "lease expired (rescued, the attempt not counted) or handed back at shutdown",
    (S.RUNNING, S.CANCELLED): "cancelled while running, once the handler stops; or Cancel raised",
    (S.SCHEDULED, S.CANCELLED): "cancel",
    (S.PENDING, S.CANCELLED): "cancel",
    (S.FAILED, S.PENDING): "manual retry",
    (S.CANCELLED, S.PENDING): "manual retry",
    (S.BLOCKED, S.PENDING): "its parent steps finished (workflows)",
    (S.BLOCKED, S.CANCELLED): "cancel, or a parent step failed under the `fail` policy",
    (S.CANCELLED, S.BLOCKED): "manual retry of a step cancelled before its parents finished, or revived by the retry of the parent step that failed",
}

ACTIVE_STATUSES: frozenset[JobStatus] = frozenset({S.SCHEDULED, S.PENDING, S.RUNNING})
FINISHED_STATUSES: frozenset[JobStatus] = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})
#: Statuses a cancel moves straight to cancelled (a running job is only asked to stop).
CANCELLABLE_STATUSES: frozenset[JobStatus] = frozenset({S.BLOCKED, S.SCHEDULED, S.PENDING})
#: Statuses a manual retry moves back to pending.
RETRYABLE_STATUSES: frozenset[JobStatus] = frozenset({S.FAILED, S.CANCELLED})


def is_allowed(old: JobStatus, new: JobStatus) -> bool:
    """True when `old -> new` is one of the allowed transitions."""
    return (old, new) in TRANSITIONS


#: How many times a job is rescued after losing its worker, unless its task says otherwise.
DEFAULT_MAX_RESCUES = 3

#: Longest error or progress message stored, in characters.
MESSAGE_LIMIT = 4_000
#: Longest traceback stored, in characters.
TRACEBACK_LIMIT = 32_000


def storable_text(text: str, limit: int, *, cut_middle: bool = False) -> str:
    """`text` as it can be stored and served back as JSON: lone surrogates (which UTF-8
    cannot encode) become U+FFFD, and a text over `limit` characters is cut, with a marker,
    keeping its start (or, with `cut_middle`, its start and its end)."""
    if len(text) > limit:
        marker = "…[cut]…"
        keep = limit - len(marker)
        if cut_middle:
            text = text[: keep - keep // 2] + marker + text[len(text) - keep // 2 :]
        else:
            text = text[:keep] + marker
    try:
        text.encode()
    except UnicodeEncodeError:
        text = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


@dataclass(frozen=True, slots=True)
class AttemptError:
    """What went wrong in one attempt. Build it with `AttemptError.of_text` from a handler's
    own strings, so what is stored is bounded and valid UTF-8."""

    attempt: int
    type: str
    message: str
    traceback: str | None
    at: datetime

    @classmethod
    def of_text(
        cls, *, attempt: int, type: str, message: str, traceback: str | None, at: datetime
    ) -> AttemptError:
        """An error whose strings come from user code: lone surrogates replaced, the message
        cut at `MESSAGE_LIMIT` characters and the traceback at `TRACEBACK_LIMIT` (in the
        middle: its frames and the end of the exception line are kept)."""
        return cls(
            attempt=attempt,
            type=storable_text(type, 200),
            message=storable_text(message, MESSAGE_LIMIT),
            traceback=None if traceback is None else storable_text(traceback, TRACEBACK_LIMIT, cut_middle=True),
            at=at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttemptError:
        return cls(
            attempt=int(data["attempt"]),
            type=str(data["type"]),
            message=str(data["message"]),
            traceback=data.get("traceback"),
            at=datetime.fromisoformat(data["at"]),
        )


@dataclass(frozen=True, slots=True)
class Progress:
    """A handler's own report of how far it got (build it with `Progress.of`)."""

    percent: float
    message: str | None = None

    @classmethod
    def of(cls, percent: float, message: str | None = None) -> Progress:
        """Validated progress: 0 <= percent <= 100, the message storable and at most
        `MESSAGE_LIMIT` characters."""
        if not 0 <= percent <= 100:
            raise ValueError("progress percent must be between 0 and 100")
        return cls(float(percent), None if message is None else storable_text(str(message), MESSAGE_LIMIT))

    def to_json(self) -> dict[str, Any]:
        """How progress is stored: `{"percent": ..., "message": ...}`."""
        return {"percent": self.percent, "message": self.message}


#: The type of a job's result (`Job[R]`); `Any` where a job is read without its task's handle.
R = TypeVar("R", default=Any)


@dataclass(frozen=True, slots=True)
class Job(Generic[R]):
    """One execution request of a task. Immutable; reading it never does I/O.

    `R` is the type of `result`: `Job` alone is `Job[Any]`; a job read through a task handle
    (`taskyard.task.Task`) is a `Job[R]` whose result was validated back into the handler's
    return type. `result` is None until the job completed (and stays None if it failed).
    """

    id: str
    task: str
    queue: str
    payload: Any
    status: JobStatus
    priority: int
    run_at: datetime
    attempt: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: R = None  # type: ignore[assignment]  # None until completed (see the docstring)
    errors: tuple[AttemptError, ...] = ()
    progress: Progress | None = None
    unique_key: str | None = None
    tags: tuple[str, ...] = ()
    timeout: float | None = None
    worker_id: str | None = None
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    rescues: int = 0
    max_rescues: int = DEFAULT_MAX_RESCUES
    #: The workflow this job is a step of (`core.workflow`), and the step's name in it.
    workflow_id: str | None = None
    step: str | None = None
    #: String metadata carried with the job and kept across retries (e.g. `traceparent`).
    meta: Mapping[str, str] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Job[R]:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def is_finished(self) -> bool:
        """True for completed, failed and cancelled jobs."""
        return self.status in FINISHED_STATUSES

    def to_json(self) -> dict[str, Any]:
        """The job as a JSON-ready dict (lease token left out)."""
        return {
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "payload": self.payload,
            "status": self.status.value,
            "priority": self.priority,
            "run_at": self.run_at.isoformat(),
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "result": self.result,
            "errors": [e.to_json() for e in self.errors],
            "progress": (
                {"percent": self.progress.percent, "message": self.progress.message}
                if self.progress
                else None
            ),
            "unique_key": self.unique_key,
            "tags": list(self.tags),
            "timeout": self.timeout,
            "worker_id": self.worker_id,
            "lease_expires_at": self.lease_expires_at.isoformat() if self.lease_expires_at else None,
            "cancel_requested": self.cancel_requested,
            "rescues": self.rescues,
            "max_rescues": self.max_rescues,
            "workflow_id": self.workflow_id,
            "step": self.step,
            "meta": dict(self.meta),
        }


@dataclass(frozen=True, slots=True)
class JobDraft:
    """A job about to be enqueued: what the caller decides, before the backend adds state.

    `run_at` None means now. A draft whose `run_at` is in the future becomes `scheduled`,
    otherwise `pending`.
    """

    id: str
    task: str
    queue: str
    payload: Any
    priority: int = 0
    run_at: datetime | None = None
    max_attempts: int = 1
    unique_key: str | None = None
    tags: tuple[str, ...] = ()
    timeout: float | None = None
    max_rescues: int = DEFAULT_MAX_RESCUES
    workflow_id: str | None = None
    step: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    def to_job(self, now: datetime, *, run_at: datetime | None = None, blocked: bool = False) -> Job:
        """The job a backend stores for this draft at `now` (scheduled when `run_at` — the
        draft's own unless the backend passes its stored, rounded one — is after `now`;
        `blocked` for a workflow step that waits for parent steps)."""
        when = run_at if run_at is not None else (self.run_at or now)
        status = JobStatus.SCHEDULED if when > now else JobStatus.PENDING
        return Job(
            id=self.id,
            task=self.task,
            queue=self.queue,
            payload=self.payload,
            status=JobStatus.BLOCKED if blocked else status,
            priority=self.priority,
            run_at=when,
            attempt=0,
            max_attempts=self.max_attempts,
            created_at=now,
            unique_key=self.unique_key,
            tags=tuple(self.tags),
            timeout=None if self.timeout is None else float(self.timeout),
            max_rescues=self.max_rescues,
            workflow_id=self.workflow_id,
            step=self.step,
            meta=dict(self.meta),
        )


@dataclass(frozen=True, slots=True)
class LeaseReport:
    """The answer to a heartbeat: jobs whose lease was lost, and jobs asked to cancel."""

    lost: frozenset[str] = frozenset()
    cancel_requested: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RescueDecision:
    """What a rescue makes of a running job whose lease expired (see `rescue_decision`)."""

    status: JobStatus  # PENDING (run it again) or FAILED (its worker was lost too often)
    attempt: int
    rescues: int
    error: AttemptError

    def apply(self, job: Job, now: datetime) -> Job:
        """`job` after the rescue: out of running, the lease and claim cleared."""
        failed = self.status is JobStatus.FAILED
        return job.replace(
            status=self.status,
            attempt=self.attempt,
            rescues=self.rescues,
            errors=(*job.errors, self.error),
            finished_at=now if failed else job.finished_at,
            worker_id=job.worker_id if failed else None,
            lease_token=None,
            lease_expires_at=None,
            cancel_requested=False,
        )


def rescue_decision(job: Job, now: datetime, reason: str | None = None) -> RescueDecision:
    """The one rule for a running job whose worker was lost: its lease expired at `now` (its
    worker died, hung or was cut off), or, with `reason`, its worker saw it die (e.g. "the
    child process running it died (signal 11, SIGSEGV)"). Losing a worker is not the
    handler's failure, so it does not use the retry budget. The job goes back to pending with
    the lost attempt not counted (the next claim re-runs the same attempt number) and
    `rescues + 1`; once that would exceed `max_rescues`, the job fails: a job that loses its
    worker every time likely kills it. Either way an error records the loss (`LeaseExpired`,
    or `WorkerLost` with `reason`). Pure: backends apply it atomically, fenced by the lease
    token they read.
    """
    rescues = job.rescues + 1
    if reason is None:
        expired = job.lease_expires_at.isoformat() if job.lease_expires_at else "?"
        lost = f"worker {job.worker_id} stopped renewing its lease (expired at {expired})"
    else:
        lost = reason
    if rescues > job.max_rescues:
        message = (
            f"its worker was lost {rescues} times (max_rescues={job.max_rescues}): the job "
            f"likely kills its worker (out of memory, a crash, a hang); last time {lost}"
        )
        status, attempt = JobStatus.FAILED, job.attempt
    else:
        message = f"{lost}; rescued ({rescues} of {job.max_rescues}), the attempt will run again"
        status, attempt = JobStatus.PENDING, max(job.attempt - 1, 0)
    error = AttemptError.of_text(
        attempt=job.attempt, type="LeaseExpired" if reason is None else "WorkerLost",
        message=message, traceback=None, at=now,
    )
    return RescueDecision(status=status, attempt=attempt, rescues=rescues, error=error)


def cancelled_job(job: Job, now: datetime) -> Job:
    """The one rule for cancelling `job` at `now`: scheduled or pending → cancelled (finished
    at `now`); running → `cancel_requested` (its worker stops it and records the cancel); an
    already cancelled job is returned unchanged; completed or failed raises
    `InvalidTransitionError`. Pure: the backend writes the result (and frees a unique key)."""
    if job.status in CANCELLABLE_STATUSES:
        return job.replace(status=S.CANCELLED, finished_at=now)
    if job.status is S.RUNNING:
        return job.replace(cancel_requested=True)
    if job.status is S.CANCELLED:
        return job
    raise InvalidTransitionError.not_cancellable(job.id, job.status.value)


def retried_job(job: Job, now: datetime, *, blocked: bool = False) -> Job:
    """The one rule for a manual retry of `job` at `now`: a failed or cancelled job goes back
    to pending (`blocked`: a workflow step whose parents have not all finished), due at `now`, with a fresh retry and rescue budget (`attempt` and `rescues` 0)
    and no trace of its last run (finish time, result, progress, worker, lease, cancel
    request); its errors are kept, as history. Any other status raises
    `InvalidTransitionError`. Pure: whether another job holds the unique key is the
    backend's to check, in the same atomic step as its write."""
    if job.status not in RETRYABLE_STATUSES:
        raise InvalidTransitionError.not_retryable(job.id, job.status.value)
    return job.replace(
        status=S.BLOCKED if blocked else S.PENDING, run_at=now, attempt=0, rescues=0,
        finished_at=None, result=None, progress=None, cancel_requested=False,
        worker_id=None, lease_token=None, lease_expires_at=None,
    )


def check_prunable(status: JobStatus) -> None:
    """Raise `ValueError` unless jobs of `status` may be pruned: only finished jobs are."""
    if status not in FINISHED_STATUSES:
        raise ValueError(f"only finished jobs can be pruned, not {status.value!r}")


@dataclass(frozen=True, slots=True)
class RescueReport:
    """What `jobs_rescue_expired` did: ids returned to pending, and ids failed because their
    worker was lost more than `max_rescues` times."""

    rescued: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a query returns. Every field None means 'any'."""

    queue: str | None = None
    status: JobStatus | None = None
    task: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    #: Text the job's id, task, queue, unique key, payload or errors contain (case-insensitive).
    q: str | None = None


#: Statuses `jobs_delete` removes: finished ones only (a running job's worker must still
#: settle it; an active job is cancelled first, then deleted).
DELETABLE_STATUSES: frozenset[JobStatus] = FINISHED_STATUSES


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a job listing, newest first; pass `next_cursor` to get the next page."""

    jobs: list[Job] = field(default_factory=list)
    next_cursor: str | None = None
