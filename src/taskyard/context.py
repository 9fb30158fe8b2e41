"""`JobContext`: what a handler receives as its second argument, and `JobLogger`, its logger."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from taskyard.core.job import Job, Progress

if TYPE_CHECKING:
    from taskyard.parent_steps import ParentSteps, StepKey
    from taskyard.task import Task
    from taskyard.workflow import MapRef, StepRef

__all__ = ("JobContext", "JobLogger")

_log = logging.getLogger("taskyard.job")
R = TypeVar("R")


class JobLogger(logging.LoggerAdapter[logging.Logger]):
    """The `taskyard.job` logger with the job's fields (`job_id`, `task`, `queue`, `attempt`)
    on every record, as attributes: what structlog's `ExtraAdder` and sentry-sdk's logging
    integration read. A call's own `extra=` is kept beside them (the job's fields win a clash);
    the standard `LoggerAdapter` would drop it."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), **(self.extra or {})}
        return msg, kwargs


@dataclass(slots=True)
class JobContext:
    """The running job (`ctx.job`, `ctx.attempt`), progress reporting and a logger.

    A workflow step also has `workflow_id`, `step`, and its parents' results:
    `ctx.results(parent)` and `ctx.parent_jobs(parent)` (read once, before the handler ran).

    `progress()` never blocks: the worker writes the latest value with the next heartbeat
    (or sooner), so it may be called from async and sync handlers alike. `ctx.logger` logs
    with the job's fields (`JobLogger`); `ctx.log_fields` are the same fields, for binding
    elsewhere (e.g. `structlog.contextvars.bind_contextvars(**ctx.log_fields)`).
    """

    job: Job
    report: Callable[[str, Progress], None] = field(repr=False)
    logger: JobLogger = field(init=False, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)
    #: A workflow step's parents as stored when the handler started (None otherwise).
    parents: ParentSteps | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.logger = JobLogger(_log, self.log_fields)

    @property
    def log_fields(self) -> dict[str, Any]:
        """The job's identifying fields: `job_id`, `task`, `queue`, `attempt`."""
        job = self.job
        return {"job_id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempt}

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, ..."""
        return self.job.attempt

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0-100, with an optional message)."""
        self.report(self.job.id, Progress.of(percent, message))

    # -- workflow steps ----------------------------------------------------------------------
    @property
    def workflow_id(self) -> str | None:
        """The id of the workflow this job is a step of (None for a job on its own)."""
        return self.job.workflow_id

    @property
    def step(self) -> str | None:
        """This step's name in its workflow (`name[i]` for a mapped step's job)."""
        return self.job.step

    @overload
    def results(self, step: StepRef[R], /) -> R: ...
    @overload
    def results(self, step: MapRef[R], /) -> list[R]: ...
    @overload
    def results(self, step: Task[Any, R, ..., Any], /) -> list[R]: ...
    @overload
    def results(self, step: str, /) -> Any: ...
    def results(self, step: StepKey, /) -> Any:
        """The results of a parent step, validated into its task's return type (a pydantic
        model comes back as the model):

        * a plain step (its name, or its `StepRef`): its result; `StepFailedError` when it
          failed or was cancelled (a `continue` or `ignore` edge let this step run anyway);
        * a mapped step (its name, or its `MapRef`): a list of the results of its jobs that
          completed, in map order (failed ones left out: see `parent_jobs`);
        * a task handle: a list of the results of every completed job of the parent steps that
          run that task.

        A name that is not a parent of this step raises `ValueError`."""
        return self._parents().results(step)

    def parent_jobs(self, step: StepKey, /) -> list[Job]:
        """The jobs of a parent step (by name, reference or task handle, as `results`) with
        their statuses, results and errors, in map order: to see which parents failed."""
        return self._parents().jobs(step)

    def _parents(self) -> ParentSteps:
        if self.parents is None:
            raise ValueError(f"job {self.job.id} is not a workflow step with parent steps")
        return self.parents
