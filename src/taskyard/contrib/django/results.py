"""What maps to what: a Django task call is a taskyard job, read back as a Django `TaskResult`.

- task name: the Django task's module path (`shop.tasks.send_receipt`);
- payload: `{"args": [...], "kwargs": {...}}` (JSON, as Django requires of task arguments);
- queue and priority: the Django task's `queue_name` and `priority` (higher runs first in both);
- `run_after`: the job's `run_at`; the job id is the result id.
"""

from __future__ import annotations

import builtins
from typing import Any

from taskyard.contrib.django.compat import InvalidTask, TaskError, TaskResult, TaskResultStatus
from taskyard.core.job import AttemptError, Job, JobStatus

__all__ = ("STATUSES", "exception_class_path", "payload_of", "task_result")

#: A taskyard job's status as a Django result's: Django has no "cancelled", and a cancelled
#: job will not run, so it reads as FAILED (its errors say why, when the worker stopped it).
STATUSES: dict[JobStatus, str] = {
    JobStatus.SCHEDULED: "READY",
    JobStatus.PENDING: "READY",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.COMPLETED: "SUCCESSFUL",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELLED: "FAILED",
}


def payload_of(args: Any, kwargs: Any) -> dict[str, Any]:
    """The job payload of one task call."""
    return {"args": list(args), "kwargs": dict(kwargs)}


def exception_class_path(error: AttemptError) -> str:
    """The dotted path of the exception class of a failed attempt (Django's
    `TaskError.exception_class_path`). taskyard stores the class's name; the last line of its
    traceback names the class as Python printed it (`module.Class: message`, no module for
    builtins), which gives the module back."""
    last = (error.traceback or "").rstrip().rpartition("\n")[2]
    printed = last.partition(":")[0].strip()
    if printed.rpartition(".")[2] == error.type and "." in printed and " " not in printed:
        return printed
    if isinstance(getattr(builtins, error.type, None), type):
        return f"builtins.{error.type}"
    return error.type


def task_error(error: AttemptError) -> Any:
    """A Django `TaskError` of one failed attempt (the traceback, or the message without one)."""
    return TaskError(
        exception_class_path=exception_class_path(error),
        traceback=error.traceback or f"{error.type}: {error.message}",
    )


def task_result(task: Any, job: Job, *, backend_alias: str) -> Any:
    """The Django `TaskResult` of `job`, a job of `task` (a Django `Task`).

    `worker_ids` has one entry per attempt (Django's `attempts` is its length); taskyard
    keeps the worker of the latest attempt only, so every entry is that worker's id.
    """
    payload = job.payload if isinstance(job.payload, dict) else {}
    worker = job.worker_id or ""
    try:
        as_run = task.using(queue_name=job.queue, priority=job.priority)
    except InvalidTask:  # a queue no longer in QUEUES: the result still reads
        as_run = task
    result = TaskResult(
        task=as_run,
        id=job.id,
        status=TaskResultStatus(STATUSES[job.status]),
        enqueued_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        last_attempted_at=job.started_at,
        args=list(payload.get("args", [])),
        kwargs=dict(payload.get("kwargs", {})),
        backend=backend_alias,
        errors=[task_error(e) for e in job.errors],
        worker_ids=[worker] * job.attempt,
    )
    if job.status is JobStatus.COMPLETED:
        # Django's TaskResult keeps the return value in a field set after construction.
        object.__setattr__(result, "_return_value", job.result)
    return result
