"""`/services`: the process's managed services with status and metrics, and their controls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.routing import APIRoute

from taskyard.errors import InvalidTransitionError, NotFoundError
from taskyard.http.api.access import current_principal
from taskyard.http.api.schemas import NAME_PATTERN, LeaseOut, ServiceOut
from taskyard.http.auth import Principal, audit
from taskyard.http.service import HttpService
from taskyard.services.periodic import PeriodicService

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("build", "service_out", "services_out")

ServiceId = Annotated[str, Path(pattern=NAME_PATTERN, description="A service id")]
Caller = Annotated[Principal, Depends(current_principal)]
ACTIONS = ("start", "stop", "restart", "pause", "resume", "run")


def service_out(entry: Any) -> ServiceOut:
    """A manager entry (`ManagedService`) as the API shows it."""
    service = entry.service
    return ServiceOut(
        id=entry.id,
        name=entry.name,
        status=service.status.value,
        error=service.error,
        critical=entry.critical,
        auto_start=entry.auto_start,
        restarts=entry.restarts,
        restarts_in_row=entry.restarts_in_row,
        gave_up=entry.gave_up,
        periodic=isinstance(service, PeriodicService),
        pausable=service.pausable,
        stoppable=not isinstance(service, HttpService),
        lease=None if (lease := service.lease()) is None else LeaseOut(name=lease["name"], leader=lease["leader"]),
        metrics=service.metrics(),
    )


def services_out(manager: Any) -> list[ServiceOut]:
    """Every managed service (none when this process runs no manager)."""
    return [service_out(e) for e in manager.services()] if manager is not None else []


def _entry(manager: Any, service_id: str) -> Any:
    if manager is None:
        raise NotFoundError(f"no service {service_id!r}: this process runs no service manager")
    return manager.get(service_id)


async def act(manager: Any, service_id: str, action: str) -> Any:
    """Do `action` (start, stop, restart, pause, resume, run) to one service; returns its
    entry."""
    entry = _entry(manager, service_id)
    if action in ("stop", "restart") and isinstance(entry.service, HttpService):
        # It would close the connection this request came on, and nothing could start it again.
        raise InvalidTransitionError(
            f"service {service_id!r} serves this API and cannot be "
            f"{'stopped' if action == 'stop' else 'restarted'} through it; {action} the task server instead"
        )
    if action == "start":
        await manager.start(service_id)
    elif action == "stop":
        await manager.stop(service_id)
    elif action == "restart":
        await manager.restart(service_id)
    elif action == "pause":
        manager.pause(service_id)
    elif action == "resume":
        manager.resume(service_id)
    elif action == "run":
        await manager.run_now(service_id)
    else:
        raise ValueError(f"unknown service action {action!r}")
    return entry


def build(ctx: HttpContext, route_class: type[APIRoute]) -> APIRouter:
    """The service routes, acting through `ctx.manager`."""
    router = APIRouter(prefix="/services", tags=["services"], route_class=route_class)

    @router.get("", response_model=list[ServiceOut], summary="List services", operation_id="listServices")
    async def list_services() -> list[ServiceOut]:
        """Status (STOPPED, STARTING, RUNNING, PAUSED, ERROR) and run metrics of each service."""
        return services_out(ctx.manager)

    @router.post("/start-all", response_model=list[ServiceOut], summary="Start every service", operation_id="startAllServices")
    async def start_all(caller: Caller) -> list[ServiceOut]:
        """Start every auto-start service that is not running (stopped, or in ERROR), in
        dependency order, each with a fresh restart budget; returns every service. One that
        fails to start shows ERROR in the list (its dependents stay stopped)."""
        if ctx.manager is None:
            raise NotFoundError("this process runs no service manager")
        started = await ctx.manager.start_all()
        audit(caller, "service.start-all", "services", [f"started={','.join(started) or '-'}"])
        return services_out(ctx.manager)

    @router.get("/{service_id}", response_model=ServiceOut, summary="Get a service", operation_id="getService")
    async def get_service(service_id: ServiceId) -> ServiceOut:
        """One service's status and metrics."""
        return service_out(_entry(ctx.manager, service_id))

    def add_action(action: str, doc: str) -> None:
        async def control(service_id: ServiceId, caller: Caller) -> ServiceOut:
            entry = await act(ctx.manager, service_id, action)
            audit(caller, f"service.{action}", service_id)
            return service_out(entry)

        control.__doc__ = doc
        router.add_api_route(
            f"/{{service_id}}/{action}",
            control,
            methods=["POST"],
            response_model=ServiceOut,
            summary=f"{action.capitalize()} a service",
            name=f"service_{action}",
            operation_id=f"{action}Service",
        )

    add_action("start", "Start a stopped (or failed) service.")
    add_action("stop", "Stop a service.")
    add_action(
        "restart",
        "Stop a service and start it again, with a fresh restart budget (counted in `restarts`).",
    )
    add_action("pause", "Pause a running service (a periodic one skips its ticks).")
    add_action("resume", "Resume a paused service.")
    add_action("run", "Run one tick of a periodic service now (409 for other services).")
    return router
