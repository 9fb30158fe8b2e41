"""`create_asgi_app(ctx)`: the FastAPI app of a task server — health, metrics, and (when
installed) the management API at `/api/v1` and the dashboard at `/`."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
from typing import Any

from fastapi import FastAPI

from taskyard.http import health, metrics
from taskyard.http.context import HttpContext

__all__ = ("BodySizeLimit", "create_asgi_app")

log = logging.getLogger("taskyard.http")

#: Routers mounted after the health routes, when their modules exist: (module, prefix).
OPTIONAL_ROUTERS = (("taskyard.http.api", "/api/v1"), ("taskyard.http.dashboard", ""))


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
    """The task server's HTTP app. `/health`, `/ready` and `/metrics` need no credentials."""
    app = FastAPI(
        title="taskyard",
        version=_version(),
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.include_router(health.build_router(ctx))
    app.include_router(metrics.build_router(ctx))
    for module_name, prefix in OPTIONAL_ROUTERS if ctx.mount_api else ():
        # Only a missing module is tolerated; an error inside one must surface.
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        build = getattr(module, "build_router", None)
        if build is None:
            log.debug("%s has no build_router yet; not mounted", module_name)
            continue
        app.include_router(build(ctx), prefix=prefix)
    app.add_middleware(BodySizeLimit, max_bytes=ctx.settings.http.max_body_bytes)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("taskyard")
    except Exception:  # running from a checkout without metadata
        return "0"
