"""`/leaders`: who holds each leadership lease (one per leader-only duty), cluster-wide."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.routing import APIRoute

from taskyard.http.api.schemas import LeaderOut
from taskyard.services.leader import holder_pid, known_leases

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = ("build", "leaders_out")


def _local_electors(manager: Any) -> dict[str, Any]:
    """This process's electors by lease name (none without a manager)."""
    if manager is None:
        return {}
    found = {}
    for entry in manager.services():
        lease = entry.service.lease()
        if lease is not None and "holder" in lease:
            found[lease["name"]] = lease
    return found


async def leaders_out(ctx: HttpContext) -> list[LeaderOut]:
    """Every known lease (the built-in duties, each user service's, and any this process
    competes for) with its holder as the backend records it."""
    local = _local_electors(ctx.manager)
    names = known_leases(ctx.app.service_specs)
    names += [n for n in local if n not in names]
    await ctx.app.open()
    rows = []
    for name in names:
        info = await ctx.app.backend.leader_get(name=name)
        mine = local.get(name)
        host, pid = holder_pid(info.holder) if info is not None else (None, None)
        rows.append(LeaderOut(
            lease=name,
            holder=info.holder if info is not None else None,
            host=host,
            pid=pid,
            elected_at=info.elected_at if info is not None else None,
            expires_at=info.expires_at if info is not None else None,
            runs_here=mine is not None,
            leads_here=bool(mine is not None and info is not None and info.holder == mine["holder"]),
        ))
    return rows


def build(ctx: HttpContext, route_class: type[APIRoute]) -> APIRouter:
    """The leadership route, reading the backend's lease records."""
    router = APIRouter(prefix="/leaders", tags=["services"], route_class=route_class)

    @router.get("", response_model=list[LeaderOut], summary="List leadership leases", operation_id="listLeaders")
    async def list_leaders() -> list[LeaderOut]:
        """One lease per leader-only duty (`scheduler`, `maintenance`, `alerter`, and
        `service:<id>` for each user service): who holds it, since when and until when. A
        process competes only for the duties it runs."""
        return await leaders_out(ctx)

    return router
