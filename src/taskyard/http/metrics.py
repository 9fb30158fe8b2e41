"""`/metrics` (Prometheus text) and `MetricsFeed`, which feeds a server's `ServerMetrics` from
the app's enqueues, the worker's job outcomes and the manager's service events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from fastapi import APIRouter
from fastapi.responses import Response

from taskyard.app import Taskyard
from taskyard.core.job import Job
from taskyard.http.context import HttpContext
from taskyard.observability import ServerMetrics
from taskyard.observability.metrics import CONTENT_TYPE
from taskyard.services.base import ServiceEvent
from taskyard.services.manager import ServiceManager
from taskyard.services.worker import JobOutcome, Worker

__all__ = ("MetricsFeed", "build_router", "refresh")

log = logging.getLogger("taskyard.http")

#: Seconds a scrape waits for the backend's counts before reporting it down.
SCRAPE_TIMEOUT = 5.0


class MetricsFeed:
    """Subscribes `metrics` to its sources; `close()` unsubscribes everything."""

    def __init__(
        self,
        metrics: ServerMetrics,
        *,
        app: Taskyard,
        manager: ServiceManager | None = None,
        worker: Worker | None = None,
    ) -> None:
        self.metrics = metrics
        self._undo: list[Callable[[], None]] = []
        app.enqueue_listeners.append(self._on_enqueue)
        self._undo.append(lambda: app.enqueue_listeners.remove(self._on_enqueue))
        if worker is not None:
            self._undo.append(worker.subscribe_jobs(self._on_job))
        if manager is not None:
            self._undo.append(manager.subscribe(self._on_service))

    def _on_enqueue(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self.metrics.job_enqueued(job.queue, job.task)

    def _on_job(self, outcome: JobOutcome) -> None:
        self.metrics.job_finished(outcome.job.queue, outcome.job.task, outcome.outcome, outcome.duration)

    def _on_service(self, event: ServiceEvent) -> None:
        if event.kind == "run" and event.ok is not None:
            self.metrics.service_run(event.service_id, event.ok, event.duration)

    def close(self) -> None:
        """Stop listening."""
        for undo in self._undo:
            with contextlib.suppress(ValueError):  # already removed
                undo()
        self._undo = []


async def refresh(ctx: HttpContext, metrics: ServerMetrics) -> None:
    """Set the scrape-time gauges: queue depth, workers, services, in-flight jobs."""
    try:
        await ctx.app.open()
        backend = ctx.app.backend
        rows, workers = await asyncio.wait_for(
            asyncio.gather(backend.queue_counts(), backend.workers_list()), SCRAPE_TIMEOUT
        )
    except Exception as exc:  # a scrape must answer even when the backend does not
        log.warning("metrics scrape could not read the backend: %s", exc)
        metrics.backend_up.set(0)
    else:
        metrics.backend_up.set(1)
        metrics.set_queue_depth(
            (row.queue, {status.value: count for status, count in row.counts.items()}) for row in rows
        )
        metrics.workers.set(len(workers))
    if ctx.manager is not None:
        entries = ctx.manager.services()
        metrics.set_services(
            {e.id: e.service.status.value for e in entries}, {e.id: e.restarts for e in entries}
        )
    if ctx.worker is not None:
        metrics.in_flight.set(len(ctx.worker.in_flight))
        metrics.lost_threads.set(len(ctx.worker.lost_threads))


def build_router(ctx: HttpContext) -> APIRouter:
    """`GET /metrics`."""
    router = APIRouter(tags=["health"])
    metrics = ctx.metrics or ServerMetrics()

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def scrape() -> Response:
        await refresh(ctx, metrics)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return router
