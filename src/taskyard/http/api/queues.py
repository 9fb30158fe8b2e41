"""`/queues`: counts per status, pause, resume, settings (concurrency, rate limit), bulk retry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.routing import APIRoute

from taskyard.backends.protocol import UNSET
from taskyard.core.queue import RateLimit
from taskyard.errors import NotFoundError
from taskyard.http.api.access import current_principal
from taskyard.http.api.schemas import NAME_PATTERN, QueueOut, QueueSettingsPatch, RetriedOut
from taskyard.http.auth import Principal, audit

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("build", "known_queue", "list_queues")

QueueName = Annotated[str, Path(pattern=NAME_PATTERN, description="A queue name")]
Caller = Annotated[Principal, Depends(current_principal)]


async def list_queues(app: Any) -> list[QueueOut]:
    """Every queue with jobs, stored settings or a registered task, sorted by name."""
    counts: dict[str, dict[str, int]] = await app.acounts()
    settings = {s.name: s for s in await app.backend.queues_list()}
    out = []
    for name in app.queue_names(set(counts) | set(settings)):
        stored = settings.get(name) or await app.backend.queue_get(queue=name)
        out.append(QueueOut.of(stored, counts.get(name, {})))
    return out


async def known_queue(app: Any, name: str) -> QueueOut:
    """The queue, or `NotFoundError` when nothing knows that name."""
    for queue in await list_queues(app):
        if queue.name == name:
            return queue
    raise NotFoundError(f"no queue named {name!r}")


def build(ctx: HttpContext, route_class: type[APIRoute]) -> APIRouter:
    """The queue routes, acting through `ctx.app`."""
    router = APIRouter(prefix="/queues", tags=["queues"], route_class=route_class)
    app = ctx.app

    @router.get("", response_model=list[QueueOut], summary="List queues with counts", operation_id="listQueues")
    async def get_queues() -> list[QueueOut]:
        """Settings and waiting/scheduled/active/completed/failed/cancelled counts."""
        return await list_queues(app)

    @router.get("/{queue}", response_model=QueueOut, summary="Get a queue", operation_id="getQueue")
    async def get_queue(queue: QueueName) -> QueueOut:
        """One queue's settings and counts."""
        return await known_queue(app, queue)

    @router.post("/{queue}/pause", response_model=QueueOut, summary="Pause a queue", operation_id="pauseQueue")
    async def pause(queue: QueueName, caller: Caller) -> QueueOut:
        """Every worker stops claiming from this queue (running jobs finish)."""
        await known_queue(app, queue)
        await app.apause_queue(queue)
        audit(caller, "queue.pause", queue)
        return await known_queue(app, queue)

    @router.post("/{queue}/resume", response_model=QueueOut, summary="Resume a queue", operation_id="resumeQueue")
    async def resume(queue: QueueName, caller: Caller) -> QueueOut:
        """Workers claim from this queue again."""
        await known_queue(app, queue)
        await app.aresume_queue(queue)
        audit(caller, "queue.resume", queue)
        return await known_queue(app, queue)

    @router.patch("/{queue}", response_model=QueueOut, summary="Change queue settings", operation_id="updateQueue")
    async def update(queue: QueueName, body: QueueSettingsPatch, caller: Caller) -> QueueOut:
        """Concurrency cap across all workers and rate limit; `null` removes a limit."""
        await known_queue(app, queue)
        given = body.model_fields_set
        rate = body.rate_limit
        await app.backend.queue_update(
            queue=queue,
            concurrency=body.concurrency if "concurrency" in given else UNSET,
            rate_limit=(
                (RateLimit(limit=rate.limit, period=rate.period) if rate else None)
                if "rate_limit" in given
                else UNSET
            ),
        )
        audit(caller, "queue.update", queue, [f"{k}={getattr(body, k)!r}" for k in sorted(given)])
        return await known_queue(app, queue)

    @router.post("/{queue}/retry-failed", response_model=RetriedOut, summary="Retry failed jobs", operation_id="retryFailedJobs")
    async def retry_failed(queue: QueueName, caller: Caller) -> RetriedOut:
        """Every failed job of the queue goes back to pending, attempts reset."""
        await known_queue(app, queue)
        count = await app.aretry_failed(queue)
        audit(caller, "queue.retry_failed", queue, [f"count={count}"])
        return RetriedOut(retried=count)

    return router
