"""Running one job: calls the handler (async on the loop, sync in a thread) under its timeout,
inside the app's tracing of the attempt if it has one, and turns what happened into an
`Outcome` for the worker to record.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pydantic

from taskyard.app import Taskyard
from taskyard.context import JobContext
from taskyard.core.job import AttemptError, Job, Progress
from taskyard.core.payload import encode_value
from taskyard.core.task import TaskSpec
from taskyard.errors import BackendError, Cancel, JobTimeoutError, RetryLater
from taskyard.parent_steps import ParentSteps, parent_names
from taskyard.services.worker.threads import ThreadSlots
from taskyard.task import result_adapter, stored_result

__all__ = ("PARENTS_RETRY_DELAY", "UNKNOWN_TASK", "Outcome", "OutcomeKind", "execute")

#: The `reason` of the outcome of a job whose task this worker does not know.
UNKNOWN_TASK = "task not registered in this worker"
#: Seconds before a workflow step runs again when its parents could not be read.
PARENTS_RETRY_DELAY = 1.0


class OutcomeKind(enum.StrEnum):
    """How one run ended, as the worker saw it."""

    COMPLETED = "completed"
    FAILED = "failed"
    #: The handler raised `RetryLater`.
    RETRY_LATER = "retry_later"
    #: Stopped because its job was cancelled (requested, or `Cancel` raised).
    CANCELLED = "cancelled"
    #: Handed back untouched: the task is not registered here, or the worker stopped.
    RELEASED = "released"
    #: The child process running it died (`reason` says how): a lost worker, not a failed attempt.
    CRASHED = "crashed"
    #: Stopped because its lease was lost: nothing is written.
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run produced (see `OutcomeKind`)."""

    kind: OutcomeKind
    result: Any = None
    error: AttemptError | None = None
    retryable: bool = True
    delay: float = 0.0
    reason: str = ""
    #: The exception behind a failure, for the tracer (never sent across processes).
    exception: BaseException | None = field(default=None, compare=False, repr=False)


def _error(job: Job, exc: BaseException, now: datetime, *, with_traceback: bool = True) -> AttemptError:
    return AttemptError.of_text(
        attempt=job.attempt,
        type=type(exc).__name__,
        message=str(exc) or type(exc).__name__,
        traceback="".join(traceback.format_exception(exc)) if with_traceback else None,
        at=now,
    )


def _arguments(spec: TaskSpec, job: Job, ctx: JobContext) -> tuple[Any, ...]:
    if spec.arity == 0:
        return ()
    payload: Any = job.payload
    if spec.payload_model is not None:
        payload = spec.payload_model.model_validate(payload)
    return (payload, ctx) if spec.wants_ctx else (payload,)


async def _parents(app: Taskyard, job: Job) -> ParentSteps | None:
    """A workflow step's parents, read once (only for a step that has some)."""
    if not parent_names(job) or job.workflow_id is None:
        return None
    workflow = await (await app.backend_for_loop()).workflow_get(workflow_id=job.workflow_id)

    def adapter(task: str) -> pydantic.TypeAdapter[Any] | None:
        spec = app.tasks.get(task)
        return None if spec is None else result_adapter(spec.handler)

    return ParentSteps(job, workflow, adapter)


async def execute(
    app: Taskyard,
    job: Job,
    *,
    report_progress: Callable[[str, Progress], None],
    threads: ThreadSlots,
) -> Outcome:
    """Run `job` once. Never raises except `CancelledError` (when the worker cancels it).

    A sync handler runs in one of `threads` (with a copy of the caller's context variables,
    the current span among them); stopped by its timeout or by the worker, it has
    `JobTimeoutError` (or `Cancel`) raised inside it while its outcome is recorded at once.
    With `app.tracing`, the attempt is traced around the handler and ended with its outcome."""
    if app.tracing is None:
        return await _run(app, job, report_progress=report_progress, threads=threads)
    with app.tracing.processing(job) as attempt:
        outcome = await _run(app, job, report_progress=report_progress, threads=threads)
        attempt.end(outcome.kind.value, error=outcome.exception)
    return outcome


async def _run(
    app: Taskyard,
    job: Job,
    *,
    report_progress: Callable[[str, Progress], None],
    threads: ThreadSlots,
) -> Outcome:
    spec = app.tasks.get(job.task)
    if spec is None:
        # Claims are filtered by the app's tasks, so this is a safety net (a task unregistered
        # after the claim, a backend ignoring the filter): another worker may know the task,
        # so hand the job back as it was rather than spend an attempt on it.
        return Outcome(OutcomeKind.RELEASED, reason=UNKNOWN_TASK)
    ctx = JobContext(job=job, report=report_progress)
    try:
        ctx.parents = await _parents(app, job)
    except BackendError as exc:  # the store did not answer: run it later, no attempt spent
        return Outcome(OutcomeKind.RETRY_LATER, delay=PARENTS_RETRY_DELAY,
                       reason=f"could not read the parent steps: {exc}")
    try:
        args = _arguments(spec, job, ctx)
    except pydantic.ValidationError as exc:
        return Outcome(
            OutcomeKind.FAILED, error=_error(job, exc, app.clock.now()), retryable=False, exception=exc
        )
    timeout = job.timeout if job.timeout is not None else spec.timeout
    try:
        async with asyncio.timeout(timeout) as deadline:
            if spec.is_async:
                result = await spec.handler(*args)
            else:
                context = contextvars.copy_context()
                result = await threads.run(
                    lambda: context.run(spec.handler, *args), job_id=job.id, task=job.task,
                    stop_with=lambda: JobTimeoutError if deadline.expired() else Cancel,
                )
    except RetryLater as exc:
        return Outcome(OutcomeKind.RETRY_LATER, delay=exc.delay, reason=str(exc))
    except Cancel as exc:
        return Outcome(OutcomeKind.CANCELLED, reason=exc.reason)
    except asyncio.CancelledError:
        raise
    except TimeoutError as exc:
        timed_out = TimeoutError(f"job timed out after {timeout}s") if deadline.expired() else exc
        return Outcome(
            OutcomeKind.FAILED,
            error=_error(job, timed_out, app.clock.now()),
            retryable=spec.retry.is_retryable(timed_out),
            exception=timed_out,
        )
    except Exception as exc:
        return Outcome(
            OutcomeKind.FAILED, error=_error(job, exc, app.clock.now()),
            retryable=spec.retry.is_retryable(exc), exception=exc,
        )
    try:
        # Results share the payload limits (core/payload.py): a runaway handler must neither
        # bloat the store nor store a value (too deep, a lone surrogate) that would break
        # every listing showing the job. The job fails instead, with the limit in its error.
        result = stored_result(result)
        encode_value(result, what="the handler's result")
    except ValueError as exc:
        bad = ValueError(f"handler returned a result that cannot be stored: {exc}")
        return Outcome(
            OutcomeKind.FAILED, error=_error(job, bad, app.clock.now(), with_traceback=False),
            retryable=False, exception=bad,
        )
    return Outcome(OutcomeKind.COMPLETED, result=result)
