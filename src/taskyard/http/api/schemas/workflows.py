"""API bodies of workflows, and their conversions from the core model."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from taskyard.core.workflow import EdgeState, Policy, Workflow, WorkflowPage, WorkflowStatus
from taskyard.http.api.schemas.jobs import JobOut

__all__ = ("EdgeOut", "WorkflowOut", "WorkflowPageOut", "WorkflowSummaryOut")


class EdgeOut(BaseModel):
    """A dependency: `child` waits for `parent` (step job ids), under `policy`."""

    parent: str
    child: str
    policy: Policy = Field(description="what the child does when the parent fails: fail, continue or ignore")
    state: EdgeState = Field(description="open: parent not finished; done; failed: the child was cancelled by it")


class WorkflowSummaryOut(BaseModel):
    """A workflow without its steps: status, times and how many steps are in each status."""

    id: str
    name: str
    status: WorkflowStatus
    created_at: datetime
    cancelled_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int] = Field(description="steps (jobs) per job status")

    @classmethod
    def of(cls, workflow: Workflow) -> WorkflowSummaryOut:
        """From the core record."""
        return cls.model_validate(workflow.to_json(with_steps=False))


class WorkflowOut(WorkflowSummaryOut):
    """A workflow with its steps (jobs, in step order, each with its `step` name) and edges."""

    steps: list[JobOut]
    edges: list[EdgeOut]

    @classmethod
    def of(cls, workflow: Workflow) -> WorkflowOut:
        """From the core record."""
        data = workflow.to_json(with_steps=False)
        return cls.model_validate({
            **data,
            "steps": [JobOut.of(j) for j in workflow.steps],
            "edges": [e.to_json() for e in workflow.edges],
        })


class WorkflowPageOut(BaseModel):
    """A page of workflows, newest first; pass `next_cursor` as `cursor` for the next one."""

    workflows: list[WorkflowSummaryOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: WorkflowPage) -> WorkflowPageOut:
        """From the core page."""
        return cls(workflows=[WorkflowSummaryOut.of(w) for w in page.workflows], next_cursor=page.next_cursor)
