"""Authentication rules: JWT checks, auth off only on loopback, application routes."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from taskyard.errors import ConfigError
from taskyard.http.api import app_router, current_principal
from taskyard.http.auth import Principal, issue_token, parse_ttl
from taskyard.http.context import HttpContext
from taskyard.services.manager import ServiceManager
from tests.e2e.conftest import Env, bearer, build_asgi, make_app, make_settings


async def test_bad_jwts_are_refused(env: Env) -> None:
    secret = env.creds.secret
    past = datetime.now(UTC) - timedelta(hours=1)
    tokens = [
        issue_token(secret, role="admin", ttl=60, now=past),  # expired
        jwt.encode({"role": "admin"}, secret, algorithm="HS256"),  # no exp
        jwt.encode({"exp": 2**40}, secret, algorithm="HS256"),  # no role
        jwt.encode({"role": "root", "exp": 2**40}, secret, algorithm="HS256"),  # unknown role
        jwt.encode({"role": "admin", "exp": 2**40}, secrets.token_urlsafe(48), algorithm="HS256"),  # other secret
        jwt.encode({"role": "admin", "exp": 2**40}, None, algorithm="none"),  # unsigned
    ]
    for token in tokens:
        response = await env.client.get("/api/v1/jobs", headers=bearer(token))
        assert response.status_code == 401, token


def test_auth_off_only_on_loopback_and_secrets_are_long() -> None:
    for host in ("0.0.0.0", "10.1.2.3"):
        settings, _ = make_settings(auth_enabled=False, host=host)
        with pytest.raises(ConfigError, match="auth_enabled"):
            build_asgi(HttpContext(app=make_app(), manager=None, settings=settings))
    settings, _ = make_settings(jwt_secret="short")
    with pytest.raises(ConfigError, match="jwt_secret"):
        build_asgi(HttpContext(app=make_app(), manager=None, settings=settings))
    assert parse_ttl("1d") == 86400 and parse_ttl("15m") == 900
    with pytest.raises(ValueError):
        parse_ttl("soon")


async def test_auth_off_on_loopback_needs_no_token() -> None:
    settings, _ = make_settings(auth_enabled=False, host="127.0.0.1")
    app = make_app()
    asgi = build_asgi(HttpContext(app=app, manager=None, settings=settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://127.0.0.1") as c:
        assert (await c.post("/api/v1/jobs", json={"task": "math.add", "payload": {"a": 1, "b": 1}})).status_code == 201
        assert (await c.get("/")).status_code == 200  # dashboard, no login
        job = await app.aenqueue("math.add", {"a": 1, "b": 2})
        page = await c.get(f"/jobs/{job.id}")
        assert page.status_code == 200 and '<dd id="rescues"' in page.text and "0 of 3" in page.text
    await app.aclose()


async def test_application_routes_share_auth() -> None:
    app = make_app()
    sync = app_router(app)
    calls: list[str] = []

    @sync.post("/sync/all")
    async def sync_all(who: Principal = current_principal_dep()) -> dict:
        calls.append(who.key_id)
        return {"queued": True}

    settings, creds = make_settings()
    asgi = build_asgi(HttpContext(app=app, manager=ServiceManager(), settings=settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://127.0.0.1") as c:
        assert (await c.post("/api/v1/sync/all")).status_code == 401
        assert (await c.post("/api/v1/sync/all", headers=creds.viewer_jwt)).status_code == 403
        ok = await c.post("/api/v1/sync/all", headers=creds.admin_key)
        assert ok.status_code == 200 and ok.json() == {"queued": True}
        assert (await c.get("/api/v1/openapi.json")).status_code == 401
        doc = (await c.get("/api/v1/openapi.json", headers=creds.viewer_key)).json()
        assert "/api/v1/sync/all" in doc["paths"]
    assert calls == ["key:ops"]
    await app.aclose()


def current_principal_dep():
    from fastapi import Depends

    return Depends(current_principal)
