"""Jobs: the frozen `Job` record, its statuses and the one table of allowed transitions."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = (
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "MESSAGE_LIMIT",
    "TRACEBACK_LIMIT",
    "TRANSITIONS",
    "AttemptError",
    "Completion",
    "Job",
    "JobDraft",
    "JobFilter",
    "JobPage",
    "JobStatus",
    "LeaseReport",
    "Progress",
    "RescueReport",
    "is_allowed",
    "storable_text",
)


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

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
    (S.RUNNING, S.FAILED): "error with no attempts left, non-retryable, or lease expired on the last attempt",
    (S.RUNNING, S.PENDING): "lease expired (rescued) or handed back at shutdown",
    (S.RUNNING, S.CANCELLED): "cancelled while running, once the handler stops; or Cancel raised",
    (S.SCHEDULED, S.CANCELLED): "cancel",
    (S.PENDING, S.CANCELLED): "cancel",
    (S.FAILED, S.PENDING): "manual retry",
    (S.CANCELLED, S.PENDING): "manual retry",
}

ACTIVE_STATUSES: frozenset[JobStatus] = frozenset({S.SCHEDULED, S.PENDING, S.RUNNING})
FINISHED_STATUSES: frozenset[JobStatus] = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})


def is_allowed(old: JobStatus, new: JobStatus) -> bool:
    """True when `old -> new` is one of the allowed transitions."""
    return (old, new) in TRANSITIONS


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


@dataclass(frozen=True, slots=True)
class Job:
    """One execution request of a task. Immutable; reading it never does I/O."""

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
    result: Any = None
    errors: tuple[AttemptError, ...] = ()
    progress: Progress | None = None
    unique_key: str | None = None
    tags: tuple[str, ...] = ()
    timeout: float | None = None
    worker_id: str | None = None
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False

    def replace(self, **changes: Any) -> Job:
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

    def to_job(self, now: datetime, *, run_at: datetime | None = None) -> Job:
        """The job a backend stores for this draft at `now` (scheduled when `run_at` — the
        draft's own unless the backend passes its stored, rounded one — is after `now`)."""
        when = run_at if run_at is not None else (self.run_at or now)
        return Job(
            id=self.id,
            task=self.task,
            queue=self.queue,
            payload=self.payload,
            status=JobStatus.SCHEDULED if when > now else JobStatus.PENDING,
            priority=self.priority,
            run_at=when,
            attempt=0,
            max_attempts=self.max_attempts,
            created_at=now,
            unique_key=self.unique_key,
            tags=tuple(self.tags),
            timeout=None if self.timeout is None else float(self.timeout),
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished run to record: the claim's lease token fences the write."""

    job_id: str
    lease_token: str
    result: Any = None


@dataclass(frozen=True, slots=True)
class LeaseReport:
    """The answer to a heartbeat: jobs whose lease was lost, and jobs asked to cancel."""

    lost: frozenset[str] = frozenset()
    cancel_requested: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RescueReport:
    """What `jobs_rescue_expired` did: ids returned to pending and ids that ran out of attempts."""

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


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a job listing, newest first; pass `next_cursor` to get the next page."""

    jobs: list[Job] = field(default_factory=list)
    next_cursor: str | None = None
