"""`/metrics` (Prometheus text), refreshed at scrape time; `MetricsFeed` (which feeds the
counters between scrapes) lives in `taskyard.observability.feed`."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import Response

from taskyard.http.context import HttpContext
from taskyard.observability import ServerMetrics
from taskyard.observability.feed import MetricsFeed
from taskyard.observability.metrics import CONTENT_TYPE

__all__ = ("MetricsFeed", "build_router", "refresh")

log = logging.getLogger("taskyard.http")

#: Seconds a scrape waits for the backend's counts before reporting it down.
SCRAPE_TIMEOUT = 5.0


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
