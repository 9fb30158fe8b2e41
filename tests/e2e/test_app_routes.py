"""Application routes at their own paths (`app_router(app, root=True)`), guarded or public."""

from __future__ import annotations

import secrets

import httpx
import pytest

from taskyard import Taskyard
from taskyard.config import Settings
from taskyard.errors import ConfigError
from taskyard.http.api import app_router
from taskyard.http.asgi import create_asgi_app
from taskyard.http.auth import issue_token
from taskyard.http.context import HttpContext
from taskyard.services.manager import ServiceManager


def context(app: Taskyard, *, mount_api: bool = True) -> tuple[HttpContext, str]:
    secret = secrets.token_urlsafe(48)
    settings = Settings(backend="memory://", http={"jwt_secret": secret})
    return HttpContext(app=app, manager=ServiceManager(), settings=settings, mount_api=mount_api), secret


async def test_root_routes_keep_their_paths_and_public_ones_need_no_credentials() -> None:
    app = Taskyard("memory://")
    probes = app_router(app, root=True, public=True, prefix="/api/admin/things")
    admin = app_router(app, root=True, prefix="/api/admin/things")

    @probes.get("/health")
    async def health() -> dict:
        return {"healthy": True}

    @admin.post("")
    async def act() -> dict:
        return {"ok": True}

    ctx, secret = context(app)
    token = {"Authorization": f"Bearer {issue_token(secret, role='admin', ttl=60)}"}
    transport = httpx.ASGITransport(app=create_asgi_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        assert (await client.get("/api/admin/things/health")).json() == {"healthy": True}
        assert (await client.post("/api/admin/things")).status_code == 401
        assert (await client.post("/api/admin/things", headers=token)).json() == {"ok": True}
        assert (await client.get("/api/v1/api/admin/things/health", headers=token)).status_code == 404
    # A process without the API role still answers the public route, and only that.
    ctx, _ = context(app, mount_api=False)
    transport = httpx.ASGITransport(app=create_asgi_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        assert (await client.get("/api/admin/things/health")).status_code == 200
        assert (await client.post("/api/admin/things", headers=token)).status_code in (404, 405)
    await app.aclose()


def test_a_public_router_refuses_anything_but_get() -> None:
    app = Taskyard("memory://")
    public = app_router(app, root=True, public=True)

    @public.post("/open-door")
    async def open_door() -> dict:
        return {}

    with pytest.raises(ConfigError, match="only hold GET"):
        create_asgi_app(context(app)[0])
