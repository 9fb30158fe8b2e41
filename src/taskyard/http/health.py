"""Health routes for load balancers and Kubernetes: `/health`, `/ready`, `/health/services`.

They stay open (no authentication) and say nothing secret.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from taskyard.http.context import HttpContext

__all__ = ("build_router", "readiness")

#: Seconds `/ready` waits for the backend to answer a ping.
PING_TIMEOUT = 2.0


async def readiness(ctx: HttpContext) -> dict[str, Any]:
    """`{ready, reasons, backend, degraded}`: ready when the backend answers, every critical
    service runs, the worker's lost threads are under their limit, and the server is not
    shutting down."""
    reasons: list[str] = []
    if ctx.draining:
        reasons.append("shutting down")
    try:
        await ctx.app.open()
        await asyncio.wait_for(ctx.app.backend.ping(), PING_TIMEOUT)
        backend = "ok"
    except Exception as exc:  # any failure to answer means "not ready", with the reason
        backend = f"unreachable: {type(exc).__name__}: {exc}" if str(exc) else f"unreachable: {type(exc).__name__}"
        reasons.append(f"backend {backend}")
    manager = ctx.manager
    degraded: list[str] = []
    if manager is not None:
        for service_id in manager.critical_down():
            service = manager.get(service_id).service
            error = f": {service.error}" if service.error else ""
            reasons.append(f"critical service {service_id!r} is {service.status.value}{error}")
        degraded = [s for s in manager.in_error() if not manager.get(s).critical]
    worker = ctx.worker
    if worker is not None and worker.is_overloaded_by_lost_threads:
        reasons.append(
            f"worker has {len(worker.lost_threads)} lost handler thread(s), the limit "
            f"(worker.max_lost_threads={worker.config.max_lost_threads}): it recycles itself"
        )
    return {"ready": not reasons, "reasons": reasons, "backend": backend, "degraded": degraded}


def build_router(ctx: HttpContext) -> APIRouter:
    """The health routes."""
    router = APIRouter(tags=["health"])

    @router.get("/health", summary="Liveness: 200 while the process serves")
    async def health() -> dict[str, Any]:
        # Still 200 when degraded: the worker recycles itself and the manager restarts
        # critical services, so a liveness restart is not needed; /ready says what is down.
        worker = ctx.worker
        lost = len(worker.lost_threads) if worker is not None else 0
        failed = ctx.manager.in_error() if ctx.manager is not None else []
        overloaded = worker is not None and worker.is_overloaded_by_lost_threads
        status = "degraded" if overloaded or failed else "ok"
        body: dict[str, Any] = {"status": status, "timestamp": ctx.app.clock.now().isoformat()}
        if lost:
            body["lost_threads"] = lost
        if failed:
            body["services_in_error"] = failed
        return body

    @router.get("/ready", summary="Readiness: backend reachable and critical services running")
    async def ready() -> JSONResponse:
        body = await readiness(ctx)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @router.get("/health/services", summary="Every service's status, health and last success")
    async def services() -> JSONResponse:
        if ctx.manager is None:
            body: dict[str, Any] = {
                "healthy": True, "status": "healthy", "timestamp": ctx.app.clock.now().isoformat(),
                "totals": {"total": 0}, "services": {},
            }
        else:
            body = ctx.manager.health()
        # A degraded process still serves; only a critical service down makes it unhealthy.
        return JSONResponse(body, status_code=503 if body["status"] == "unhealthy" else 200)

    return router
