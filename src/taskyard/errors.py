"""The taskyard exception tree; a leaf module that imports nothing from taskyard.

`RetryLater` and `Cancel` are control flow raised by handlers, not errors.
"""

from __future__ import annotations

__all__ = (
    "BackendError",
    "BackendUnavailable",
    "Cancel",
    "ConfigError",
    "InvalidNameError",
    "InvalidTransitionError",
    "JobNotFound",
    "JobTimeoutError",
    "LeaseLost",
    "MemoryLimitExceeded",
    "NotFoundError",
    "PayloadError",
    "RetryLater",
    "ScheduleError",
    "SchemaVersionError",
    "StepFailedError",
    "TaskyardError",
    "UnknownTaskError",
    "WorkflowNotFound",
)


class TaskyardError(Exception):
    """Base class of every error taskyard raises."""


class ConfigError(TaskyardError, ValueError):
    """A setting is invalid; the message names the setting."""


class PayloadError(TaskyardError, ValueError):
    """A job payload does not match its task's model; nothing was stored."""

    def __init__(self, task: str, message: str, errors: list[dict[str, object]] | None = None):
        super().__init__(f"invalid payload for task {task!r}: {message}")
        self.task = task
        self.errors = errors or []


class InvalidNameError(TaskyardError, ValueError):
    """A task, queue, schedule, owner or service name breaks the name rule (`core/names.py`);
    nothing was stored. The message names the kind, the value and the characters allowed."""

    def __init__(self, kind: str, value: object, message: str):
        super().__init__(message)
        self.kind = kind
        self.value = value


class UnknownTaskError(TaskyardError, LookupError):
    """No task of that name is registered on the application."""

    def __init__(self, task: str, known: list[str] | None = None):
        hint = f" (known tasks: {', '.join(sorted(known))})" if known else ""
        super().__init__(f"unknown task {task!r}{hint}")
        self.task = task


class NotFoundError(TaskyardError, LookupError):
    """A named object (job, schedule, service, queue) does not exist."""


class JobNotFound(NotFoundError):
    """No job has that id."""

    def __init__(self, job_id: str):
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class WorkflowNotFound(NotFoundError):
    """No workflow has that id."""

    def __init__(self, workflow_id: str):
        super().__init__(f"no workflow with id {workflow_id!r}")
        self.workflow_id = workflow_id


class StepFailedError(TaskyardError):
    """`ctx.results(step)` of a plain parent step that did not complete (it failed or was
    cancelled, and the edge's policy let this step run anyway): it has no result to give.
    `ctx.parent_jobs(step)` has the job, with its status and errors."""

    def __init__(self, step: str, status: str, error: str | None = None):
        why = f" ({error})" if error else ""
        super().__init__(
            f"parent step {step!r} ended {status}{why}: it has no result; "
            f"ctx.parent_jobs({step!r}) has the job with its status and errors"
        )
        self.step = step
        self.status = status


class InvalidTransitionError(TaskyardError):
    """The requested change is not allowed from the job's current status. Build it with one
    of the constructors below, so every backend says the same thing."""

    @classmethod
    def not_cancellable(cls, job_id: str, status: str) -> InvalidTransitionError:
        """A cancel of a job that already finished (completed or failed)."""
        return cls(f"job {job_id} is {status}; it cannot be cancelled")

    @classmethod
    def not_retryable(cls, job_id: str, status: str) -> InvalidTransitionError:
        """A manual retry of a job that is neither failed nor cancelled."""
        return cls(f"job {job_id} is {status}; only failed or cancelled jobs can be retried")

    @classmethod
    def parent_step_failed(cls, job_id: str, step: str | None, parent: str) -> InvalidTransitionError:
        """A manual retry of a workflow step cancelled because its parent step `parent`
        failed: that parent is the one to retry (its retry revives this step)."""
        return cls(
            f"job {job_id} (workflow step {step!r}) was cancelled because its parent step {parent} "
            f"failed; retry that step, which brings this one back"
        )

    @classmethod
    def unique_key_held(
        cls, job_id: str, unique_key: str | None, holder: str | None = None
    ) -> InvalidTransitionError:
        """A manual retry refused because another active job (`holder`, when the backend
        knows which) holds the job's unique key."""
        if holder is None:
            return cls(
                f"job {job_id} cannot be retried: another active job holds its unique key "
                f"{unique_key!r}"
            )
        return cls(
            f"job {job_id} cannot be retried: job {holder} with unique key {unique_key!r} is active"
        )


class ScheduleError(TaskyardError, ValueError):
    """A schedule definition is invalid (bad cron, unknown time zone, unknown task...)."""


class BackendError(TaskyardError):
    """The storage backend failed."""


class BackendUnavailable(BackendError, ConnectionError):
    """The storage backend cannot be reached right now; the operation may be retried."""


class SchemaVersionError(BackendError):
    """The database schema is older or newer than this version of taskyard expects."""


class JobTimeoutError(TaskyardError, TimeoutError):
    """Raised inside a thread-run (plain `def`) handler whose job passed its timeout, to stop
    it: again every fraction of a second for `worker.stop_grace` seconds. The attempt itself
    is recorded as failed (a `TimeoutError`) at the timeout, whatever the handler does."""


class LeaseLost(BackendError):
    """A worker's write was refused because its lease token no longer owns the job."""

    @classmethod
    def of_job(cls, job_id: str) -> LeaseLost:
        """The refusal of a write on `job_id`, in the words every backend uses."""
        return cls(f"lease on job {job_id!r} is no longer held")


class MemoryLimitExceeded(TaskyardError):
    """A job run in a child process (`isolation="process"`) grew past its memory limit and
    the child was killed. The attempt fails; whether it is retried is the task's `retry`
    policy (list it in `non_retryable` to fail at once)."""


class RetryLater(Exception):  # control flow, not an error
    """Raise from a handler to run the job again after `delay` seconds.

    The attempt does not count against the task's retry budget.
    """

    def __init__(self, delay: float = 0.0, reason: str | None = None):
        if delay < 0:
            raise ValueError("RetryLater delay must be >= 0")
        super().__init__(reason or f"retry in {delay}s")
        self.delay = float(delay)


class Cancel(Exception):  # control flow, not an error
    """Raise from a handler to stop the job for good with status `cancelled`."""

    def __init__(self, reason: str = "cancelled by handler"):
        super().__init__(reason)
        self.reason = reason
