"""`/alerts`: the alert rules and their state, as this process's alerter evaluates them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.routing import APIRoute

from taskyard.http.api.schemas import AlertOut, AlertsOut
from taskyard.services.alerts import Alerter

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("alerts_of", "build")


def alerts_of(manager: Any) -> AlertsOut | None:
    """The alerts of the alerter among `manager`'s services; None when this process runs none
    (no rules, or no maintenance role)."""
    if manager is None:
        return None
    for entry in manager.services():
        if isinstance(entry.service, Alerter):
            alerter = entry.service
            return AlertsOut(
                evaluated_here=alerter.is_leader(),
                alerts=[AlertOut(**state) for state in alerter.states()],
            )
    return None


def build(ctx: HttpContext, route_class: type[APIRoute]) -> APIRouter:
    """The alert routes, reading the local alerter's memory (alerts run on the leader)."""
    router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=route_class)

    @router.get("", response_model=AlertsOut, summary="List alerts", operation_id="listAlerts")
    async def list_alerts() -> AlertsOut:
        """Every alert instance with its state (ok, pending, firing, resolved), value and
        threshold. Alert state lives on the elected leader: ask a process whose
        `evaluated_here` is true. A process with no alerter answers an empty list."""
        return alerts_of(ctx.manager) or AlertsOut(evaluated_here=False, alerts=[])

    return router
