"""`WorkflowBuilder`: what `app.workflow(name)` returns — steps and fan-outs joined by `after=`,
validated as they are added, then stored in one atomic write (`enqueue` / `aenqueue`).

The graph rules (what a finished parent does to its children) live in `core.workflow`; this
module only turns typed calls into a `WorkflowDraft`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, overload

from taskyard.core import ids
from taskyard.core.job import JobDraft
from taskyard.core.names import check_name
from taskyard.core.workflow import Edge, Policy, Workflow, WorkflowDraft, map_step_name, step_base
from taskyard.task import Task

__all__ = ("AFTER_META", "After", "MapRef", "StepRef", "WorkflowBuilder", "WorkflowHost")

R = TypeVar("R")
P = TypeVar("P")
T = TypeVar("T")

#: The job `meta` key where a step keeps the names of its parent steps (comma-separated): the
#: worker reads the parents' results for `ctx.results` only for steps that have some.
AFTER_META = "taskyard.after"


class WorkflowHost(Protocol):
    """What a builder needs of its app (`Taskyard` is one)."""

    def build_draft(
        self,
        task: str,
        payload: Any = None,
        *,
        delay: float | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: str | None = None,
        job_id: str | None = None,
    ) -> JobDraft:
        """Validate one enqueue and return the draft to store."""
        ...

    async def store_workflow(self, draft: WorkflowDraft, connection: Any = None) -> Workflow:
        """Store a workflow draft atomically (in the caller's transaction with `connection`)."""
        ...

    def run_sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the sync facade's loop."""
        ...


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class StepRef(Generic[R]):
    """A plain step of a workflow being built: one job. Pass it in `after=` of later steps,
    and to `ctx.results(...)` in a child's handler to read its result typed as `R`."""

    name: str
    task: str
    job_id: str
    builder_id: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class MapRef(Generic[R]):
    """A mapped step (`wf.map`): one job per item, named `name[i]`. In `after=` it stands for
    all of them; `ctx.results(ref)` gives a `list[R]` in map order."""

    name: str
    task: str
    job_ids: tuple[str, ...]
    builder_id: str = dataclasses.field(repr=False)


#: A parent as `after=` takes it: a step reference or a step's name.
Parent = StepRef[Any] | MapRef[Any] | str
#: `after=`: one parent, several (each with the `fail` policy), or a mapping of parents to
#: their policies (`"fail"`, `"continue"`, `"ignore"`).
After = Parent | Sequence[Parent] | Mapping[Parent, Policy | str]

#: What an id looks like (`core.ids`: 26 characters of Crockford's base 32).
_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_POLICIES = ", ".join(repr(p.value) for p in Policy)


def _step_name(name: Any, task: str) -> str:
    """`name`, or the task's name when None, checked against the core's rule for step names."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"a step name is a string, not {type(name).__name__}")
    step = task if name is None else name
    # The core's rule for a mapped step's job names holds exactly the valid base names.
    if step_base(map_step_name(step, 0)) != (step, 0):
        hint = " (the task's name, taken as the step's: pass name=)" if name is None else ""
        raise ValueError(
            f"bad step name {step!r}{hint}: letters, digits and _ . : - only, 1 to 100 characters"
        )
    return step


class WorkflowBuilder:
    """A workflow being built: `step` and `map` add steps (each parent before its children, so
    a cycle cannot be built), `enqueue` / `aenqueue` store it all in one atomic write.

    The workflow's id and its steps' job ids are fixed as they are built: enqueueing the same
    builder again (say, after a lost reply) returns the workflow stored the first time.
    `workflow_id` chooses the id (e.g. `core.ids.deterministic_id` of a run's date, so that two
    processes starting the same run store it once).
    """

    def __init__(self, host: WorkflowHost, name: str, *, workflow_id: str | None = None) -> None:
        self.host = host
        self.name = check_name("workflow name", name)
        if workflow_id is not None and not _ID.fullmatch(workflow_id):
            raise ValueError(f"bad workflow id {workflow_id!r}: 26 characters of Crockford's base 32 (core.ids)")
        self.id = workflow_id or ids.new_id()
        self._drafts: list[JobDraft] = []
        self._edges: list[Edge] = []
        self._last_id: str | None = None
        #: Step name → the job ids of that step (one for a plain step).
        self._steps: dict[str, tuple[str, ...]] = {}

    def __repr__(self) -> str:
        return f"<WorkflowBuilder {self.name!r} {self.id} steps={list(self._steps)}>"

    # -- building ----------------------------------------------------------------------------
    @overload
    def step(
        self, task: Task[None, R, ..., Any], payload: None = None, /, *, name: str | None = None,
        after: After = (), queue: str | None = None, priority: int | None = None,
        max_attempts: int | None = None, timeout: float | None = None,
        delay: float | None = None, run_at: datetime | None = None,
    ) -> StepRef[R]: ...
    @overload
    def step(
        self, task: Task[P, R, ..., Any], payload: P, /, *, name: str | None = None,
        after: After = (), queue: str | None = None, priority: int | None = None,
        max_attempts: int | None = None, timeout: float | None = None,
        delay: float | None = None, run_at: datetime | None = None,
    ) -> StepRef[R]: ...
    @overload
    def step(
        self, task: str, payload: Any = None, /, *, name: str | None = None,
        after: After = (), queue: str | None = None, priority: int | None = None,
        max_attempts: int | None = None, timeout: float | None = None,
        delay: float | None = None, run_at: datetime | None = None,
    ) -> StepRef[Any]: ...
    def step(
        self, task: Task[Any, Any, ..., Any] | str, payload: Any = None, /, *, name: str | None = None,
        after: After = (), queue: str | None = None, priority: int | None = None,
        max_attempts: int | None = None, timeout: float | None = None,
        delay: float | None = None, run_at: datetime | None = None,
    ) -> StepRef[Any]:
        """Add one step: a job of `task` (a handle, whose payload type the type checker checks,
        or a task name) with `payload`, validated as `app.enqueue` does.

        `name` defaults to the task's name; `after` lists the parent steps (references or
        names, policy `fail`) or maps them to their policies. `queue`, `priority`,
        `max_attempts` and `timeout` override the task's own; `delay` / `run_at` only for a
        step without parents (one with parents runs when they finish)."""
        task_name = _task_name(task)
        step = _step_name(name, task_name)
        self._check_new(step)
        parents = self._resolve(after, step)
        if parents and (delay is not None or run_at is not None):
            raise ValueError(f"step {step!r} has parents: it runs when they finish, so no delay or run_at")
        draft = self._draft(task_name, payload, step, parents, queue=queue, priority=priority,
                            max_attempts=max_attempts, timeout=timeout, delay=delay, run_at=run_at)
        self._add(step, [draft], parents)
        return StepRef(step, task_name, draft.id, self.id)

    @overload
    def map(
        self, task: Task[P, R, ..., Any], items: Iterable[P], /, *, name: str | None = None,
        after: After = (), queue: str | None = None, priority: int | None = None,
        max_attempts: int | None = None, timeout: float | None = None,
    ) -> MapRef[R]: ...
    @overload
    def map(
        self, task: str, items: Iterable[Any], /, *, name: str | None = None,
        after: After = (), queue: str | None = None, priority: int | None = None,
        max_attempts: int | None = None, timeout: float | None = None,
    ) -> MapRef[Any]: ...
    def map(
        self, task: Task[Any, Any, ..., Any] | str, items: Iterable[Any], /, *, name: str | None = None,
        after: After = (), queue: str | None = None, priority: int | None = None,
        max_attempts: int | None = None, timeout: float | None = None,
    ) -> MapRef[Any]:
        """Fan out: one job of `task` per item of `items` (each a payload), named `name[0]`,
        `name[1]`, ... Every job has the parents of `after`; a step after this one waits for
        all of them. With no items the step has no jobs, and its children do not wait for it."""
        task_name = _task_name(task)
        step = _step_name(name, task_name)
        self._check_new(step)
        parents = self._resolve(after, step)
        drafts = [
            self._draft(task_name, item, map_step_name(step, i), parents, queue=queue, priority=priority,
                        max_attempts=max_attempts, timeout=timeout)
            for i, item in enumerate(items)
        ]
        self._add(step, drafts, parents)
        return MapRef(step, task_name, tuple(d.id for d in drafts), self.id)

    @property
    def steps(self) -> list[str]:
        """The names of the steps added so far, in order."""
        return list(self._steps)

    def draft(self) -> WorkflowDraft:
        """The `WorkflowDraft` to store (the core validates it once more)."""
        if not self._drafts:
            raise ValueError(f"workflow {self.name!r} has no steps (a map over no items adds none)")
        return WorkflowDraft(id=self.id, name=self.name, steps=tuple(self._drafts), edges=tuple(self._edges))

    # -- storing -----------------------------------------------------------------------------
    async def aenqueue(self, *, connection: Any = None) -> Workflow:
        """Async twin of `enqueue`."""
        return await self.host.store_workflow(self.draft(), connection)

    def enqueue(self, *, connection: Any = None) -> Workflow:
        """Store the workflow in one atomic write — its header, every step, every edge — and
        return it as stored. `connection` (PostgreSQL): inside that open transaction of the
        caller's, so the workflow exists if and only if it commits; any other backend raises
        `ConfigError` naming it, before anything is stored."""
        return self.host.run_sync(lambda: self.aenqueue(connection=connection))

    # -- inside ------------------------------------------------------------------------------
    def _check_new(self, step: str) -> None:
        if step in self._steps:
            raise ValueError(
                f"workflow {self.name!r} already has a step named {step!r}: give this one another name= "
                "(a step's name defaults to its task's)"
            )

    def _resolve(self, after: After, step: str) -> dict[str, Policy]:
        """`after` as {parent step name: policy}, every parent an existing step of this builder."""
        if isinstance(after, StepRef | MapRef | str):
            pairs: list[tuple[Any, Any]] = [(after, Policy.FAIL)]
        elif isinstance(after, Mapping):
            pairs = list(after.items())
        else:
            pairs = [(p, Policy.FAIL) for p in after]
        parents: dict[str, Policy] = {}
        for ref, policy in pairs:
            parent = self._parent_name(ref, step)
            try:
                parents[parent] = Policy(policy)
            except ValueError:
                raise ValueError(
                    f"step {step!r}: unknown policy {policy!r} for parent {parent!r}; one of {_POLICIES}"
                ) from None
        return parents

    def _parent_name(self, ref: Any, step: str) -> str:
        if isinstance(ref, StepRef | MapRef):
            if ref.builder_id != self.id:
                raise ValueError(f"step {step!r}: {ref.name!r} is a step of another workflow")
            return ref.name
        if not isinstance(ref, str):
            raise TypeError(f"step {step!r}: after= takes step references or step names, not {type(ref).__name__}")
        if ref not in self._steps:
            known = ", ".join(repr(s) for s in self._steps) or "none yet"
            raise ValueError(
                f"step {step!r} is after {ref!r}, which is not a step of workflow {self.name!r} "
                f"(add parents first; steps so far: {known})"
            )
        return ref

    def _next_id(self) -> str:
        self._last_id = ids.new_id_after(self._last_id)
        return self._last_id

    def _draft(
        self, task: str, payload: Any, step: str, parents: Mapping[str, Policy], *,
        max_attempts: int | None, timeout: float | None, **options: Any,
    ) -> JobDraft:
        draft = self.host.build_draft(task, payload, **options)
        changes: dict[str, Any] = {
            # Step ids sort in step order (parents first): backends read steps by id.
            "id": self._next_id(),
            "workflow_id": self.id,
            "step": step,
            # A step is identified by its workflow: a task's unique key does not apply to it.
            "unique_key": None,
            "meta": {**draft.meta, AFTER_META: ",".join(parents)} if parents else dict(draft.meta),
        }
        if max_attempts is not None:
            if max_attempts < 1:
                raise ValueError(f"step {step!r}: max_attempts must be at least 1")
            changes["max_attempts"] = int(max_attempts)
        if timeout is not None:
            if timeout <= 0:
                raise ValueError(f"step {step!r}: timeout must be more than 0 seconds")
            changes["timeout"] = float(timeout)
        return dataclasses.replace(draft, **changes)

    def _add(self, step: str, drafts: list[JobDraft], parents: Mapping[str, Policy]) -> None:
        for draft in drafts:
            for parent, policy in parents.items():
                for parent_id in self._steps[parent]:
                    self._edges.append(Edge(parent=parent_id, child=draft.id, policy=policy))
        self._drafts.extend(drafts)
        self._steps[step] = tuple(d.id for d in drafts)


def _task_name(task: Task[Any, Any, ..., Any] | str) -> str:
    if isinstance(task, Task):
        return task.name
    if isinstance(task, str):
        return task
    raise TypeError(f"a step runs a task: pass its handle or its name, not {type(task).__name__}")

