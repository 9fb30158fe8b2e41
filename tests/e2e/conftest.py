"""Fixtures for the HTTP tests: an app on the memory backend behind the real ASGI app, with
JWT and API-key credentials for both roles.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from taskyard.app import Taskyard
from taskyard.config import Settings
from taskyard.http.auth import issue_token
from taskyard.http.context import HttpContext
from taskyard.services.manager import ServiceManager
from tests.support.redis import free_port
from tests.support.waiting import wait_until

#: Debian's chromium: Playwright never downloads a browser here (`make browser` installs it).
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def need_chromium() -> None:
    """Fail (under CI) or skip when Debian's chromium is missing."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (install Debian's chromium: `make browser`)"
        if os.environ.get("CI"):
            pytest.fail(message + " — required because CI is set")
        pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium; Playwright never downloads a browser here."""
    need_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@contextlib.asynccontextmanager
async def serving(app: Taskyard, manager: ServiceManager) -> AsyncIterator[tuple[str, Creds]]:
    """uvicorn serving the full ASGI app of `app` (dashboard refreshing every second) on a free
    loopback port, with `manager`'s services started; yields the base URL and credentials,
    and stops everything (and closes the app) after."""
    import uvicorn

    port = free_port()
    settings, creds = make_settings(port=port, dashboard_refresh_seconds=1)
    ctx = HttpContext(app=app, manager=manager, settings=settings)
    server = uvicorn.Server(uvicorn.Config(
        build_asgi(ctx), host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="off"))
    serving_task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, timeout=20, interval=0.02, what="the dashboard server to start")
    await manager.start_all()
    try:
        yield f"http://127.0.0.1:{port}", creds
    finally:
        await manager.stop_all()
        server.should_exit = True
        await serving_task
        await app.aclose()


class AddRequest(BaseModel):
    """Payload of the test task `math.add`."""

    a: int
    b: int


def make_app() -> Taskyard:
    """A small app: one typed task, one that always fails, one that sleeps."""
    app = Taskyard("memory://")

    @app.task("math.add", queue="math")
    async def add(req: AddRequest) -> int:
        return req.a + req.b

    @app.task("always.fail", queue="default")
    async def fail(payload: dict) -> None:
        raise RuntimeError("boom: " + str(payload))

    return app


@dataclass
class Creds:
    """Headers for each kind of caller."""

    secret: str
    admin_jwt: dict[str, str]
    viewer_jwt: dict[str, str]
    admin_key: dict[str, str]
    viewer_key: dict[str, str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_settings(**http: Any) -> tuple[Settings, Creds]:
    """Settings with auth on, a JWT secret and two API keys; and headers for each."""
    secret = secrets.token_urlsafe(48)
    admin_key, viewer_key = secrets.token_urlsafe(40), secrets.token_urlsafe(40)
    options: dict[str, Any] = {
        "jwt_secret": secret,
        "api_keys": [
            {"key": admin_key, "role": "admin", "name": "ops"},
            {"key": viewer_key, "role": "viewer", "name": "grafana"},
        ],
        **http,
    }
    settings = Settings(backend="memory://", http=options)
    creds = Creds(
        secret=secret,
        admin_jwt=bearer(issue_token(secret, role="admin", ttl=600, subject="alice")),
        viewer_jwt=bearer(issue_token(secret, role="viewer", ttl=600, subject="bob")),
        admin_key=bearer(admin_key),
        viewer_key=bearer(viewer_key),
    )
    return settings, creds


def build_asgi(ctx: HttpContext) -> FastAPI:
    """The server's ASGI app when it exists; otherwise our two routers on a bare FastAPI."""
    try:
        from taskyard.http.asgi import create_asgi_app
    except ImportError:
        from taskyard.http import api, dashboard

        asgi = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        asgi.include_router(api.build_router(ctx), prefix="/api/v1")
        asgi.include_router(dashboard.build_router(ctx))
        return asgi
    return create_asgi_app(ctx)


@dataclass
class Env:
    """One test's HTTP world."""

    app: Taskyard
    ctx: HttpContext
    asgi: FastAPI
    client: httpx.AsyncClient
    creds: Creds


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """The API over a memory-backed app with a service manager (nothing started)."""
    app = make_app()
    settings, creds = make_settings()
    ctx = HttpContext(app=app, manager=ServiceManager(), settings=settings)
    asgi = build_asgi(ctx)
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:5050") as client:
        yield Env(app=app, ctx=ctx, asgi=asgi, client=client, creds=creds)
    await app.aclose()
