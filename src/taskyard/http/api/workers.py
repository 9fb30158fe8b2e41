"""`/workers`: registered worker processes with their heartbeat and current jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.routing import APIRoute

from taskyard.http.api.schemas import WorkerOut

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("build",)


def build(ctx: HttpContext, route_class: type[APIRoute]) -> APIRouter:
    """The worker routes, reading the backend's worker registry."""
    router = APIRouter(prefix="/workers", tags=["workers"], route_class=route_class)

    @router.get("", response_model=list[WorkerOut], summary="List workers", operation_id="listWorkers")
    async def list_workers() -> list[WorkerOut]:
        """Every registered worker: host, pid, queues, last heartbeat and running job ids."""
        await ctx.app.open()
        return [WorkerOut.of(w) for w in await ctx.app.backend.workers_list()]

    return router
