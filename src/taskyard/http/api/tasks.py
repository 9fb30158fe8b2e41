"""`/tasks`: every task name seen in active jobs or on live workers, and whether any live
worker can run its waiting jobs (two apps or versions sharing a store)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query
from fastapi.routing import APIRoute

from taskyard.core.coverage import WORKER_LIVE_SECONDS, TaskCoverage, task_coverage
from taskyard.http.api.schemas import TaskOut

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("build", "coverage_of")


async def coverage_of(app: Any) -> list[TaskCoverage]:
    """The task coverage of `app`'s store now: per-task job counts against live workers."""
    await app.open()
    now = app.clock.now()
    counts = await app.backend.task_counts(now=now)
    workers = await app.backend.workers_list()
    return task_coverage(counts, workers, now=now, worker_timeout=WORKER_LIVE_SECONDS)


def build(ctx: HttpContext, route_class: type[APIRoute]) -> APIRouter:
    """The task routes, reading job counts and the worker registry."""
    router = APIRouter(prefix="/tasks", tags=["tasks"], route_class=route_class)

    @router.get("", response_model=list[TaskOut], summary="List tasks and who can run them", operation_id="listTasks")
    async def list_tasks(
        unclaimable: bool | None = Query(
            None, description="true: only tasks whose waiting jobs no live worker knows"
        ),
    ) -> list[TaskOut]:
        """Every task name seen in scheduled, pending or running jobs or registered by a live
        worker (heartbeat within the last 60 s), sorted by name: job counts over all queues,
        the live workers that know it, and `unclaimable` when jobs wait and none does.
        Reads every active job: the cost grows with the backlog."""
        found = [TaskOut.of(c) for c in await coverage_of(ctx.app)]
        if unclaimable is not None:
            found = [t for t in found if t.unclaimable is unclaimable]
        return found

    return router
