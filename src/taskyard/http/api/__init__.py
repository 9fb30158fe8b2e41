"""The management API under `/api/v1`: jobs, workflows, queues, schedules, services, workers,
tasks, alerts.

`build_router(ctx)` is what the server mounts; `app_router(app)` lets an application add its
own routes behind the same authentication (GET needs viewer, anything else admin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from starlette.responses import RedirectResponse
from starlette.routing import Match

from taskyard.errors import ConfigError
from taskyard.http.api import (
    alerts,
    jobs,
    leaders,
    queues,
    schedules,
    services,
    tasks,
    workers,
    workflows,
)
from taskyard.http.api.access import current_principal, make_guard, require_admin
from taskyard.http.api.errors import (
    DEFAULT_MAX_BODY,
    ERROR_RESPONSES,
    ApiError,
    ErrorResponse,
    error_response,
    limited_route_class,
)
from taskyard.http.auth import Principal, check_bind, shared_authenticator

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = (
    "API_PREFIX",
    "ApiError",
    "ErrorResponse",
    "Principal",
    "app_router",
    "build_root_router",
    "build_router",
    "current_principal",
    "require_admin",
    "service_manager",
)

API_PREFIX = "/api/v1"


def app_router(app: Any, *, root: bool = False, public: bool = False, **options: Any) -> APIRouter:
    """A router for the application's own routes, served under `/api/v1` with taskyard's auth.

    ```python
    sync = app_router(app)

    @sync.post("/sync/all")   # POST /api/v1/sync/all, admin role
    async def sync_all() -> dict: ...
    ```
    Handlers may depend on `current_principal` (who called), `require_admin` or
    `service_manager` (this process's services). `root=True` serves the routes at their own
    paths instead of under `/api/v1` (a path an existing deployment already probes, e.g.
    `/api/admin/schedulers`); `public=True` serves them without authentication — for health
    documents only: such a router may hold only GET routes (checked when the server builds).
    """
    router = APIRouter(route_class=limited_route_class(DEFAULT_MAX_BODY), **options)
    router.taskyard_root = root  # type: ignore[attr-defined]
    router.taskyard_public = public  # type: ignore[attr-defined]
    app.http_routers.append(router)
    return router


def service_manager(request: Request) -> Any:
    """Dependency: this process's `ServiceManager` (None when it runs no services)."""
    return request.app.state.ctx.manager


def _app_routers(ctx: HttpContext, *, root: bool) -> list[APIRouter]:
    return [r for r in getattr(ctx.app, "http_routers", ()) if getattr(r, "taskyard_root", False) is root]


def build_root_router(ctx: HttpContext, *, public_only: bool = False) -> APIRouter:
    """The application's routes registered with `app_router(app, root=True)`, for mounting at
    `/`: behind the same guard as the API unless `public=True` (GET only). `public_only`: just
    the public ones (a process that serves no API still answers its app's health probes)."""
    route_class = limited_route_class(ctx.settings.http.max_body_bytes)
    guarded = [Depends(make_guard(shared_authenticator(ctx)))]
    root = APIRouter(route_class=route_class)
    for router in _app_routers(ctx, root=True):
        public = getattr(router, "taskyard_public", False)
        if public_only and not public:
            continue
        if public:
            for route in router.routes:
                unsafe = set(getattr(route, "methods", ()) or ()) - {"GET", "HEAD"}
                if unsafe:
                    raise ConfigError(
                        f"public application route {getattr(route, 'path', route)!r} allows "
                        f"{', '.join(sorted(unsafe))}: a public router may only hold GET routes; "
                        "put the others on an app_router without public=True"
                    )
        root.include_router(
            _adopt(router, route_class), dependencies=[] if public else guarded, responses=ERROR_RESPONSES
        )
    return root


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


def build_router(ctx: HttpContext) -> APIRouter:
    """Every API route, for mounting at `/api/v1` (the server serves the OpenAPI document at
    `/api/v1/openapi.json`).

    Refuses (`ConfigError`) to serve without authentication on a non-loopback address.
    """
    http = ctx.settings.http
    check_bind(http.host, http.auth_enabled)
    guard = make_guard(shared_authenticator(ctx))
    route_class = limited_route_class(http.max_body_bytes)
    root = APIRouter(route_class=route_class)
    guarded = [Depends(guard)]
    modules = (jobs, workflows, queues, schedules, services, leaders, workers, tasks, alerts)
    routers = [module.build(ctx, route_class) for module in modules]
    routers += [_adopt(router, route_class) for router in _app_routers(ctx, root=False)]
    for router in routers:
        root.include_router(router, dependencies=guarded, responses=ERROR_RESPONSES)
    _add_fallback(root, [r for router in routers for r in router.routes if isinstance(r, APIRoute)])
    return root


def _add_fallback(root: APIRouter, routes: list[APIRoute]) -> None:
    """Last route: an unknown path (404) or a known path with another method (405) gets the
    API's error shape instead of Starlette's `{"detail": ...}` (or a dashboard page)."""

    async def fallback(request: Request, path: str) -> Any:
        # `routes` carry their paths without the mount prefix, as `path` does.
        scope = {"type": "http", "path": "/" + path, "root_path": "", "method": request.method}
        if path.endswith("/"):  # what Starlette's redirect_slashes would have done
            bare = {**scope, "path": "/" + path.rstrip("/")}
            if any(r.matches(bare)[0] is Match.FULL for r in routes):
                url = request.url.replace(path=request.url.path.rstrip("/"))
                return RedirectResponse(str(url), 307)
        allowed = sorted({m for r in routes if r.matches(scope)[0] is Match.PARTIAL for m in r.methods or ()})
        if allowed:
            response = error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return error_response(404, "not_found", "no such API route")

    root.add_api_route(
        "/{path:path}", fallback, include_in_schema=False,
        methods=["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"],
    )
