"""The management API under `/api/v1`: jobs, queues, schedules, services, workers.

`build_router(ctx)` is what the server mounts; `app_router(app)` lets an application add its
own routes behind the same authentication (GET needs viewer, anything else admin).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute

from taskyard.http.api import jobs, queues, schedules, services, workers
from taskyard.http.api.access import current_principal, make_guard, require_admin
from taskyard.http.api.errors import (
    DEFAULT_MAX_BODY,
    ERROR_RESPONSES,
    ApiError,
    ErrorResponse,
    limited_route_class,
)
from taskyard.http.auth import Authenticator, Principal, check_bind

__all__ = (
    "API_PREFIX",
    "ApiError",
    "ErrorResponse",
    "Principal",
    "app_router",
    "build_router",
    "current_principal",
    "require_admin",
)

API_PREFIX = "/api/v1"


def app_router(app: Any, **options: Any) -> APIRouter:
    """A router for the application's own routes, served under `/api/v1` with taskyard's auth.

    ```python
    sync = app_router(app)

    @sync.post("/sync/all")   # POST /api/v1/sync/all, admin role
    async def sync_all() -> dict: ...
    ```
    Handlers may depend on `current_principal` (who called) or `require_admin`.
    """
    router = APIRouter(route_class=limited_route_class(DEFAULT_MAX_BODY), **options)
    app.http_routers.append(router)
    return router


def _adopt(router: APIRouter, route_class: type[APIRoute]) -> APIRouter:
    """A copy of an application router whose routes use this server's body limit."""
    adopted = APIRouter(route_class=route_class)
    for route in router.routes:
        if not isinstance(route, APIRoute):
            adopted.routes.append(route)
            continue
        adopted.add_api_route(
            route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
        )
    return adopted


def build_router(ctx: Any) -> APIRouter:
    """Every API route, for mounting at `/api/v1` (the server serves the OpenAPI document at
    `/api/v1/openapi.json`).

    Refuses (`ConfigError`) to serve without authentication on a non-loopback address.
    """
    http = ctx.settings.http
    check_bind(http.host, http.auth_enabled)
    guard = make_guard(Authenticator(http))
    route_class = limited_route_class(http.max_body_bytes)
    root = APIRouter(route_class=route_class)
    guarded = [Depends(guard)]
    for module in (jobs, queues, schedules, services, workers):
        root.include_router(module.build(ctx, route_class), dependencies=guarded, responses=ERROR_RESPONSES)
    for router in getattr(ctx.app, "http_routers", ()):
        root.include_router(_adopt(router, route_class), dependencies=guarded, responses=ERROR_RESPONSES)

    return root
