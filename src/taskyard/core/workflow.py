"""Workflows: jobs (steps) joined by dependencies, stored together and run as a graph.

A workflow is enqueued in one atomic write (`Backend.workflow_enqueue`): its header, every
step as a job, and every dependency as an `Edge` from a parent step to a child step. A step
with parents is stored `blocked`; it becomes `pending` in the same atomic write that settles
its last parent — never by a separate sweep a crash could skip. The rules for what a finished
parent does to its children are here, once, as pure functions; every backend carries them
out inside its own settle, cancel and retry writes:

* A parent that **completed** marks its edges `done`.
* A parent that **failed or was cancelled** marks each edge by the edge's policy:
  `fail` (the default) marks it `failed` and the child is cancelled (and, through the same
  rule, every step below it that depends on it under `fail`); `continue` and `ignore` mark it
  `done`: the child runs once its other parents have finished, and can read the failure.
* A `blocked` child with no `open` edge left and no `failed` one becomes `pending`.
* A manual retry of a failed or cancelled step puts it back to `pending` (`blocked` while an
  edge into it is still `open`) — refused while an edge into it is `failed` (retry that
  parent instead) — and revives its children it had cancelled: their `failed` edges from it
  become `open` again, and a child left with no `failed` edge goes back to `blocked`, and so on
  down the graph.

The workflow's status is derived from its steps (`workflow_status`), never stored apart from
them (only a cancel is remembered on the header).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from taskyard.core.job import FINISHED_STATUSES, Job, JobDraft, JobStatus

__all__ = (
    "Edge",
    "EdgeState",
    "Policy",
    "Workflow",
    "WorkflowDraft",
    "WorkflowHeader",
    "WorkflowPage",
    "WorkflowStatus",
    "edge_state_after",
    "map_step_name",
    "step_base",
    "workflow_status",
)

S = JobStatus


class Policy(enum.StrEnum):
    """What a child step does when a parent it depends on fails or is cancelled."""

    #: The child is cancelled (and the steps depending on it under `fail`); the workflow fails.
    FAIL = "fail"
    #: The child runs anyway once its parents have finished; the workflow still ends failed.
    CONTINUE = "continue"
    #: The child runs anyway, and the parent's failure does not fail the workflow.
    IGNORE = "ignore"


class EdgeState(enum.StrEnum):
    """Where one dependency stands: its parent not finished yet, finished (or failed under a
    policy that lets the child run), or failed under `fail` (the child was cancelled by it)."""

    OPEN = "open"
    DONE = "done"
    FAILED = "failed"


def edge_state_after(parent: JobStatus, policy: Policy) -> EdgeState:
    """The state an edge takes when its parent step finishes with status `parent`."""
    if parent is S.COMPLETED or policy is not Policy.FAIL:
        return EdgeState.DONE
    return EdgeState.FAILED


@dataclass(frozen=True, slots=True)
class Edge:
    """A dependency: `child` waits for `parent` (two step job ids of one workflow)."""

    parent: str
    child: str
    policy: Policy = Policy.FAIL
    state: EdgeState = EdgeState.OPEN

    def to_json(self) -> dict[str, str]:
        return {"parent": self.parent, "child": self.child, "policy": self.policy.value, "state": self.state.value}


class WorkflowStatus(enum.StrEnum):
    """Where a workflow is, derived from its steps (`workflow_status`)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: A step name: letters, digits and `_ . : -`, up to 100 characters (a mapped step's jobs are
#: named `name[i]`).
_STEP_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
_MAPPED = re.compile(r"(?P<base>[A-Za-z0-9_.:\-]{1,100})\[(?P<index>\d+)\]")


def map_step_name(base: str, index: int) -> str:
    """The name of the `index`-th job of a mapped (fanned-out) step: `base[index]`."""
    return f"{base}[{index}]"


def step_base(step: str) -> tuple[str, int | None]:
    """A step name split into its base name and map index (None for a plain step)."""
    m = _MAPPED.fullmatch(step)
    return (m["base"], int(m["index"])) if m else (step, None)


@dataclass(frozen=True, slots=True)
class WorkflowDraft:
    """A workflow about to be enqueued: its header and its steps as job drafts, in an order
    where every parent comes before its children (the builder's order), and its edges.

    Validated on construction: step ids sort in step order (stores read steps by id; make
    them with `core.ids.new_id_after`), step drafts carry this workflow's id and a unique, valid step
    name, no unique key (a step is identified by its workflow), no `run_at` on a step that
    has parents; edges join steps of this workflow, parent before child, once each.
    """

    id: str
    name: str
    steps: tuple[JobDraft, ...]
    edges: tuple[Edge, ...] = ()

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"workflow {self.name!r} has no steps")
        order: dict[str, int] = {}
        names: set[str] = set()
        for i, d in enumerate(self.steps):
            if d.workflow_id != self.id:
                raise ValueError(f"step {d.step!r} belongs to workflow {d.workflow_id!r}, not {self.id!r}")
            if d.step is None or not (_STEP_NAME.fullmatch(d.step) or _MAPPED.fullmatch(d.step)):
                raise ValueError(f"bad step name {d.step!r}: letters, digits and _.:- only, up to 100")
            if d.step in names:
                raise ValueError(f"workflow {self.name!r} has two steps named {d.step!r}")
            if d.unique_key is not None:
                raise ValueError(f"step {d.step!r}: workflow steps cannot have a unique key")
            if d.id in order:
                raise ValueError(f"step {d.step!r}: job id {d.id} used twice")
            if i and d.id <= self.steps[i - 1].id:
                raise ValueError(
                    f"step {d.step!r}: step ids must sort in step order (make them with "
                    "core.ids.new_id_after)"
                )
            names.add(d.step)
            order[d.id] = i
        pairs: set[tuple[str, str]] = set()
        for e in self.edges:
            if e.parent not in order or e.child not in order:
                raise ValueError("an edge joins a job that is not a step of this workflow")
            if order[e.parent] >= order[e.child]:
                raise ValueError("an edge's parent must come before its child (steps in dependency order)")
            if (e.parent, e.child) in pairs:
                raise ValueError("two edges join the same parent and child")
            if e.state is not EdgeState.OPEN:
                raise ValueError("a new workflow's edges are open")
            pairs.add((e.parent, e.child))
        for d in self.steps:
            if d.run_at is not None and d.id in self.blocked_ids:
                raise ValueError(f"step {d.step!r} has parents: it runs when they finish, not at a set time")

    @property
    def blocked_ids(self) -> frozenset[str]:
        """The steps stored `blocked`: those with at least one parent."""
        return frozenset(e.child for e in self.edges)

    def jobs(self, now: datetime) -> list[Job]:
        """The jobs a backend stores at `now`, in step order."""
        blocked = self.blocked_ids
        return [d.to_job(now, blocked=d.id in blocked) for d in self.steps]


@dataclass(frozen=True, slots=True)
class WorkflowHeader:
    """What is stored for the workflow itself."""

    id: str
    name: str
    created_at: datetime
    #: When the whole workflow was cancelled (`Backend.workflow_cancel`); None otherwise.
    cancelled_at: datetime | None = None


def workflow_status(header: WorkflowHeader, steps: Iterable[Job], edges: Iterable[Edge]) -> WorkflowStatus:
    """The one rule for a workflow's status: running while a step is not finished; then
    cancelled if the workflow was cancelled; failed if a step failed or was cancelled, unless
    every edge out of that step (at least one) has the `ignore` policy; else completed."""
    out: dict[str, set[Policy]] = {}
    for e in edges:
        out.setdefault(e.parent, set()).add(e.policy)
    failed = False
    for job in steps:
        if job.status not in FINISHED_STATUSES:
            return WorkflowStatus.RUNNING
        if job.status is not S.COMPLETED and out.get(job.id, {Policy.FAIL}) != {Policy.IGNORE}:
            failed = True
    if header.cancelled_at is not None:
        return WorkflowStatus.CANCELLED
    return WorkflowStatus.FAILED if failed else WorkflowStatus.COMPLETED


@dataclass(frozen=True, slots=True)
class Workflow:
    """A workflow as read back (`Backend.workflow_get`): its header, its steps (jobs, in step
    order) and its edges with their states. Reading it never does I/O."""

    header: WorkflowHeader
    steps: tuple[Job, ...]
    edges: tuple[Edge, ...]

    @property
    def id(self) -> str:
        return self.header.id

    @property
    def name(self) -> str:
        return self.header.name

    @property
    def status(self) -> WorkflowStatus:
        return workflow_status(self.header, self.steps, self.edges)

    @property
    def finished_at(self) -> datetime | None:
        """When the last step finished, once none is left to run."""
        if self.status is WorkflowStatus.RUNNING:
            return None
        times = [j.finished_at for j in self.steps if j.finished_at is not None]
        return max(times, default=self.header.cancelled_at)

    def counts(self) -> dict[str, int]:
        """How many steps are in each job status."""
        counts = {s.value: 0 for s in JobStatus}
        for job in self.steps:
            counts[job.status.value] += 1
        return counts

    def step(self, name: str) -> list[Job]:
        """The jobs of step `name`: one for a plain step, every job of a mapped step in map
        order (empty when there is no such step)."""
        found: list[tuple[int, Job]] = []
        for job in self.steps:
            base, index = step_base(job.step or "")
            if job.step == name:
                found.append((-1, job))
            elif base == name and index is not None:
                found.append((index, job))
        return [job for _, job in sorted(found, key=lambda p: p[0])]

    def parents(self, job_id: str) -> list[Job]:
        """The parent steps of one step, in step order."""
        ids = {e.parent for e in self.edges if e.child == job_id}
        return [j for j in self.steps if j.id in ids]

    def to_json(self, *, with_steps: bool = True) -> dict[str, object]:
        data: dict[str, object] = {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "created_at": self.header.created_at.isoformat(),
            "cancelled_at": self.header.cancelled_at.isoformat() if self.header.cancelled_at else None,
            "finished_at": f.isoformat() if (f := self.finished_at) else None,
            "counts": self.counts(),
        }
        if with_steps:
            data["steps"] = [j.to_json() for j in self.steps]
            data["edges"] = [e.to_json() for e in self.edges]
        return data


@dataclass(frozen=True, slots=True)
class WorkflowPage:
    """One page of workflows, newest first; pass `next_cursor` for the next page."""

    workflows: Sequence[Workflow] = ()
    next_cursor: str | None = None
