"""Seed 003 on MySQL, as the seed's team runs it: taskyard's tables and the sync's own records
(services, service_logs) in one MySQL database.
"""

from __future__ import annotations

import asyncio
import secrets

import httpx

from taskyard.config import Settings
from taskyard.http.asgi import create_asgi_app
from taskyard.http.auth import issue_token
from taskyard.http.context import HttpContext
from taskyard.services.manager import ServiceManager
from taskyard.testing import drain
from tests.support.mysql import isolated_url


async def test_seed003_syncs_on_mysql_with_its_records_there_too() -> None:
    from examples import service_sync

    async with isolated_url() as url:
        db = service_sync.sync_database({"TASKYARD_BACKEND": url})
        assert isinstance(db, service_sync.MysqlSyncDatabase)
        app = service_sync.create_app(url, database=db, spread=0)
        secret = secrets.token_urlsafe(48)
        settings = Settings(backend=url, http={"jwt_secret": secret})
        asgi = create_asgi_app(HttpContext(app=app, manager=ServiceManager(), settings=settings))
        admin = {"Authorization": f"Bearer {issue_token(secret, role='admin', ttl=600)}"}
        transport = httpx.ASGITransport(app=asgi)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                queued = await client.post("/api/v1/sync/all", headers=admin)
                assert queued.status_code == 202, queued.text
                assert queued.json()["queued"] == 2  # two active demo services, one inactive
                await drain(app)
                status = (await client.get("/api/v1/sync/status", headers=admin)).json()
                assert status["completed"] == 2 and status["failed"] == 0
                first = await asyncio.to_thread(db.log_count, 1)
                assert first > 0 and await asyncio.to_thread(db.log_count, 2) > 0  # in MySQL
                again = await client.post("/api/v1/sync/service/1", headers=admin)
                await drain(app)
                job = (await client.get(f"/api/v1/sync/jobs/{again.json()['job']}", headers=admin)).json()
                assert job["status"] == "completed" and job["result"]["inserted"] == 0
                assert await asyncio.to_thread(db.log_count, 1) == first  # nothing twice
        finally:
            await app.aclose()
