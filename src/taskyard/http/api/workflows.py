"""`/workflows`: list (newest first, cursor pages), get with steps and edges, cancel, retry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.routing import APIRoute

from taskyard.errors import WorkflowNotFound
from taskyard.http.api.access import current_principal
from taskyard.http.api.schemas import ID_PATTERN, WorkflowOut, WorkflowPageOut
from taskyard.http.auth import Principal, audit

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("build",)

WorkflowId = Annotated[str, Path(pattern=ID_PATTERN, description="A workflow id")]
Caller = Annotated[Principal, Depends(current_principal)]


def build(ctx: HttpContext, route_class: type[APIRoute]) -> APIRouter:
    """The workflow routes, acting through `ctx.app`."""
    router = APIRouter(prefix="/workflows", tags=["workflows"], route_class=route_class)
    app = ctx.app

    @router.get("", response_model=WorkflowPageOut, summary="List workflows, newest first",
                operation_id="listWorkflows")
    async def list_workflows(
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    ) -> WorkflowPageOut:
        """Each workflow with its status and step counts (not its steps); page with `cursor`."""
        return WorkflowPageOut.of(await app.alist_workflows(limit=limit, cursor=cursor))

    @router.get("/{workflow_id}", response_model=WorkflowOut, summary="Get a workflow", operation_id="getWorkflow")
    async def get_workflow(workflow_id: WorkflowId) -> WorkflowOut:
        """The workflow with every step (a job, with its `step` name and status) and every edge
        with its policy and state."""
        workflow = await app.aget_workflow(workflow_id)
        if workflow is None:
            raise WorkflowNotFound(workflow_id)
        return WorkflowOut.of(workflow)

    @router.post("/{workflow_id}/cancel", response_model=WorkflowOut, summary="Cancel a workflow",
                 operation_id="cancelWorkflow")
    async def cancel_workflow(workflow_id: WorkflowId, caller: Caller) -> WorkflowOut:
        """Steps not started are cancelled, running ones asked to stop; finished ones stay."""
        workflow = await app.acancel_workflow(workflow_id)
        audit(caller, "workflow.cancel", workflow_id)
        return WorkflowOut.of(workflow)

    @router.post("/{workflow_id}/retry", response_model=WorkflowOut, summary="Retry a workflow",
                 operation_id="retryWorkflow")
    async def retry_workflow(workflow_id: WorkflowId, caller: Caller) -> WorkflowOut:
        """Resume it: every failed or cancelled step runs again (those a failed parent had
        cancelled come back with that parent), and the workflow carries on from there."""
        workflow = await app.aretry_workflow(workflow_id)
        audit(caller, "workflow.retry", workflow_id)
        return WorkflowOut.of(workflow)

    return router
