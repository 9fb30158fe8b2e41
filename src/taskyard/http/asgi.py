"""`create_asgi_app(ctx)`: the FastAPI app of a task server — health, metrics, and (unless
the context says otherwise) the management API at `/api/v1` and the dashboard at `/`. For a
user's own ASGI app (docs/integrations.md): `lifespan(app)` and `mount(asgi, app, path)`, which
serves the API and the dashboard under a prefix (every URL they emit follows the ASGI `root_path`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from taskyard.app import Taskyard
from taskyard.config import Settings, load_settings
from taskyard.http import api, apidocs, health, metrics
from taskyard.http import dashboard as dashboard_routes
from taskyard.http.context import HttpContext
from taskyard.http.guard import RequestGuard

__all__ = ("BodySizeLimit", "create_asgi_app", "lifespan", "mount")

class BodySizeLimit:
    """Refuses request bodies over `max_bytes` with 413 (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _too_large(send, self.max_bytes)
                return
        seen = 0
        responded = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not responded:
                await _too_large(send, self.max_bytes)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Any, limit: int) -> None:
    # The same shape as every API error (taskyard.http.api.errors).
    body = json.dumps(
        {"error": {"code": "payload_too_large", "message": f"request body is over {limit} bytes", "details": None}}
    ).encode()
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


def create_asgi_app(ctx: HttpContext) -> FastAPI:
    """The task server's HTTP app. `/health`, `/ready`, `/metrics` and the app's public routes
    (`app_router(app, root=True, public=True)`, served without the API role too) need no credentials;
    every request passes the `RequestGuard` (Host, cross-site, JSON-only API writes) first,
    whether authentication is on or not."""
    app = FastAPI(title="taskyard", version=_version(), openapi_url=None, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.include_router(health.build_router(ctx))
    app.include_router(metrics.build_router(ctx))
    if ctx.mount_api:
        # Before the API: its last route answers every other path under /api/v1.
        app.include_router(apidocs.build_router(ctx, app.openapi))
        app.include_router(api.build_router(ctx), prefix="/api/v1")
        app.include_router(api.build_root_router(ctx))  # the app's own paths, before the dashboard
        app.include_router(dashboard_routes.build_router(ctx))
    else:  # a process without the API role still answers its app's health probes
        app.include_router(api.build_root_router(ctx, public_only=True))
    http = ctx.settings.http
    app.add_middleware(BodySizeLimit, max_bytes=http.max_body_bytes)
    app.add_middleware(RequestGuard, bind_host=http.host, allowed_hosts=http.allowed_hosts)  # outermost
    return app


def lifespan(app: Taskyard) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan for a user's ASGI app (`FastAPI(lifespan=lifespan(app))`, Starlette alike):
    the taskyard app's backend is opened on the server's loop at startup and closed (with the
    sync facade, if a sync route used it) at shutdown."""

    @asynccontextmanager
    async def run(_asgi: Any) -> AsyncIterator[None]:
        async with app:
            yield

    return run


def mount(
    asgi: Any,
    app: Taskyard,
    path: str = "/taskyard",
    *,
    settings: Settings | None = None,
    dashboard: bool = True,
) -> FastAPI:
    """Serve `app`'s management API (`{path}/api/v1`, its OpenAPI document at
    `{path}/api/v1/openapi.json` and Swagger UI at `{path}/api/v1/docs`), health, metrics and
    (unless `dashboard=False`) the dashboard (`{path}/`) under `path` of the user's ASGI app
    `asgi` (FastAPI or Starlette: anything with `mount(path, app)`), and return the mounted app.

    Every URL they emit starts with the ASGI `root_path` the mount sets (`path`, behind
    whatever prefix the user's app itself has), and the dashboard's cookies are for `path`.
    `settings` (default: `load_settings()`, i.e. taskyard.toml and TASKYARD_*) give the
    credentials, limits, and the host and port the user's server listens on, which the Host
    check compares with (or `http.allowed_hosts`). This process runs no services: the
    services routes answer 404 and the dashboard's Services page is empty; workers run in
    `taskyard worker` processes.
    """
    if not path.startswith("/") or path.endswith("/") or "//" in path:
        raise ValueError(f"mount path {path!r} must start with '/' and not end with one (e.g. '/taskyard')")
    settings = settings if settings is not None else load_settings()
    ctx = HttpContext(app, None, settings)
    sub = FastAPI(title="taskyard", version=_version(), openapi_url=None, docs_url=None, redoc_url=None)
    sub.state.ctx = ctx
    sub.include_router(health.build_router(ctx))
    sub.include_router(metrics.build_router(ctx))
    sub.include_router(apidocs.build_router(ctx, sub.openapi))
    sub.include_router(api.build_router(ctx), prefix=api.API_PREFIX)
    if dashboard:
        sub.include_router(dashboard_routes.build_router(ctx))
    sub.add_middleware(BodySizeLimit, max_bytes=settings.http.max_body_bytes)
    sub.add_middleware(RequestGuard, bind_host=settings.http.host, allowed_hosts=settings.http.allowed_hosts)
    asgi.mount(path, sub)
    return sub


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("taskyard")
    except Exception:  # running from a checkout without metadata
        return "0"
