"""`ParentSteps`: a workflow step's parents as its handler sees them (`ctx.results`,
`ctx.parent_jobs`), read once from the stored workflow before the handler starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic

from taskyard.core.job import Job, JobStatus
from taskyard.core.workflow import Workflow
from taskyard.errors import StepFailedError
from taskyard.task import Task
from taskyard.workflow import AFTER_META, MapRef, StepRef

__all__ = ("ParentSteps", "StepKey", "parent_names")

#: What `ctx.results` and `ctx.parent_jobs` take: a parent step's name or reference, or the
#: handle of the task that parent steps run.
StepKey = str | StepRef[Any] | MapRef[Any] | Task[Any, Any, ..., Any]


def parent_names(job: Job) -> list[str]:
    """The names of a step's parent steps, as the builder recorded them (none for a job that
    is not a workflow step, or a step without parents)."""
    after = job.meta.get(AFTER_META) if job.workflow_id is not None else None
    return after.split(",") if after else []


class ParentSteps:
    """The parents of one step, as stored when its handler started.

    `adapter(task)` gives how a stored result of `task` becomes its handler's return type
    (None: as stored)."""

    def __init__(
        self,
        job: Job,
        workflow: Workflow | None,
        adapter: Callable[[str], pydantic.TypeAdapter[Any] | None],
    ) -> None:
        self.job = job
        self.names = parent_names(job)
        self._adapter = adapter
        parent_ids = {e.parent for e in workflow.edges if e.child == job.id} if workflow else set()
        #: Parent step name → its jobs (map order for a mapped step).
        self._jobs: dict[str, list[Job]] = {
            name: [j for j in workflow.step(name) if j.id in parent_ids] if workflow else []
            for name in self.names
        }

    def jobs(self, key: StepKey) -> list[Job]:
        """The jobs of the parent step(s) `key` names, each with its status, result and errors:
        one for a plain step, every job of a mapped step in map order; for a task handle,
        those of every parent step that runs that task, in step order."""
        if isinstance(key, Task):
            found = [j for name in self.names for j in self._jobs[name] if j.task == key.name]
            if not found:
                raise ValueError(
                    f"step {self.job.step!r} has no parent step running task {key.name!r} "
                    f"(its parents: {self._known()})"
                )
            return found
        name = key if isinstance(key, str) else key.name
        if name not in self._jobs:
            raise ValueError(f"{name!r} is not a parent step of {self.job.step!r} (its parents: {self._known()})")
        return list(self._jobs[name])

    def results(self, key: StepKey) -> Any:
        """The results of parent step(s) `key`, each validated into its task's return type:
        a plain step's result (`StepFailedError` when it did not complete); for a mapped step
        or a task handle, a list of the results of the jobs that completed, in map order."""
        jobs = self.jobs(key)
        if not isinstance(key, Task | MapRef) and self._is_plain(key, jobs):
            job = jobs[0]
            if job.status is not JobStatus.COMPLETED:
                last = job.errors[-1] if job.errors else None
                raise StepFailedError(job.step or "", job.status.value, f"{last.type}: {last.message}" if last else None)
            return self._typed(job)
        return [self._typed(j) for j in jobs if j.status is JobStatus.COMPLETED]

    @staticmethod
    def _is_plain(key: str | StepRef[Any] | MapRef[Any], jobs: list[Job]) -> bool:
        if isinstance(key, StepRef):
            return True
        name = key if isinstance(key, str) else key.name
        return len(jobs) == 1 and jobs[0].step == name

    def _typed(self, job: Job) -> Any:
        adapter = self._adapter(job.task)
        if adapter is None or job.result is None:
            return job.result
        try:
            return adapter.validate_python(job.result)
        except pydantic.ValidationError as exc:
            raise ValueError(
                f"parent job {job.id} ({job.step}): its result does not fit the return type of task "
                f"{job.task!r}: {exc.errors(include_url=False)}"
            ) from None

    def _known(self) -> str:
        return ", ".join(repr(n) for n in self.names) or "none"
