"""Every example in `examples/` working end to end: each seed's app on the memory or SQLite
backend, its jobs drained, its schedules fired, its routes called through the real ASGI app and
its services under a real task server."""

from __future__ import annotations

import importlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskyard import FakeClock, JobStatus, Taskyard, WorkflowStatus
from taskyard.config import Settings, load_settings
from taskyard.http.asgi import create_asgi_app
from taskyard.http.auth import issue_token
from taskyard.http.context import HttpContext
from taskyard.server import TaskServer
from taskyard.services.manager import ServiceManager
from taskyard.services.scheduler import Scheduler
from taskyard.testing import drain
from tests.e2e.test_server import free_port, wait_for
from tests.support.backends import isolated_url
from tests.support.waiting import wait_until as until
from tests.support.workflows import WORKFLOW_KINDS

EXAMPLES = ("demo", "services_app", "transactional_enqueue", "scheduler_fleet", "task_server",
            "background_jobs", "service_sync")
#: 2026-11-22, a Sunday, 06:00 UTC.
START = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_imports_with_an_app_and_a_docstring(name: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # importing must not create files; if it did, they land here
    module = importlib.import_module(f"examples.{name}")
    assert isinstance(module.app, Taskyard)
    assert module.__doc__ and "taskyard" in module.__doc__
    assert list(tmp_path.iterdir()) == []


def http_settings() -> tuple[Settings, str]:
    secret = secrets.token_urlsafe(48)
    return Settings(backend="memory://", http={"jwt_secret": secret}), secret


async def fire_due(app: Taskyard, clock: FakeClock, when: datetime) -> None:
    """Store the declared schedules, move the clock to `when` and run one scheduler pass."""
    await app.schedules.sync_declared()
    clock.set(when)
    await Scheduler(app, None).tick()


# -- seed 003: service sync --------------------------------------------------------------------
class FlakyStatusApi:
    """Fails the first `failures` calls for each service, then returns two records."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: dict[int, int] = {}

    async def fetch(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        n = self.calls[service["id"]] = self.calls.get(service["id"], 0) + 1
        if n <= self.failures:
            raise ConnectionError(f"status API timed out for {service['name']}")
        return [{"id": f"{service['id']}-a", "status": "up"}, {"id": f"{service['id']}-b", "status": "down"}]


async def test_seed003_sync_all_through_the_admin_route(tmp_path: Path) -> None:
    from examples import service_sync

    clock = FakeClock(START)
    db = service_sync.SyncDatabase(str(tmp_path / "sync.db"))
    api = FlakyStatusApi()
    app = service_sync.create_app("memory://", clock=clock, database=db, status_api=api,
                                  rng=random.Random(3))
    settings, secret = http_settings()
    asgi = create_asgi_app(HttpContext(app=app, manager=ServiceManager(), settings=settings))
    admin = {"Authorization": f"Bearer {issue_token(secret, role='admin', ttl=600)}"}
    viewer = {"Authorization": f"Bearer {issue_token(secret, role='viewer', ttl=600)}"}
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:5050") as client:
        assert (await client.post("/api/v1/sync/all")).status_code == 401
        assert (await client.post("/api/v1/sync/all", headers=viewer)).status_code == 403
        response = await client.post("/api/v1/sync/all", headers=admin)
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["queued"] == 2  # the demo data: two active services, one inactive
        # The jobs are spread over up to 30 s; a second request while they wait adds nothing.
        again = (await client.post("/api/v1/sync/all", headers=admin)).json()
        assert sorted(again["jobs"]) == sorted(body["jobs"])
        status = (await client.get("/api/v1/sync/status", headers=viewer)).json()
        assert status["delayed"] + status["waiting"] == 2 and status["completed"] == 0
        clock.advance(30)
        await drain(app)
        status = (await client.get("/api/v1/sync/status", headers=viewer)).json()
        assert status == {"waiting": 0, "delayed": 0, "active": 0, "completed": 2, "failed": 0}
        job = (await client.get(f"/api/v1/sync/jobs/{body['jobs'][0]}", headers=viewer)).json()
        assert job["status"] == "completed" and job["result"]["inserted"] == 2
        assert db.log_count(1) == db.log_count(2) == 2
        # Run one service again: its records are already stored, nothing is duplicated.
        one = await client.post("/api/v1/sync/service/1", headers=admin)
        assert one.status_code == 202
        await drain(app)
        job = (await client.get(f"/api/v1/sync/jobs/{one.json()['job']}", headers=viewer)).json()
        assert job["result"]["inserted"] == 0 and db.log_count(1) == 2
        assert (await client.post("/api/v1/sync/service/99", headers=admin)).status_code == 404
        # An inactive service fails at once (not retryable).
        gone = (await client.post("/api/v1/sync/service/3", headers=admin)).json()
        await drain(app)
        job = (await client.get(f"/api/v1/sync/jobs/{gone['job']}", headers=viewer)).json()
        assert job["status"] == "failed" and job["attempt"] == 1 and "inactive" in job["error"]
        doc = (await client.get("/api/v1/openapi.json", headers=viewer)).json()
        assert {"/api/v1/sync/all", "/api/v1/sync/status"} <= set(doc["paths"])
    await app.aclose()


async def test_seed003_schedule_fires_at_0630_and_retries_back_off_2_4_8(tmp_path: Path) -> None:
    from examples import service_sync

    clock = FakeClock(START)
    db = service_sync.SyncDatabase(str(tmp_path / "sync.db"))
    api = FlakyStatusApi(failures=3)
    app = service_sync.create_app("memory://", clock=clock, database=db, status_api=api, spread=0)
    assert app.schedules.declared["daily-service-sync"].cron == "30 6 * * *"
    await fire_due(app, clock, START.replace(minute=30))
    await drain(app)  # the fan-out job runs and enqueues one sync per active service
    syncs = (await app.alist_jobs(task="services.sync")).jobs
    assert len(syncs) == 2
    delays = []
    while True:
        await drain(app)
        jobs = [await app.aget_job(j.id) for j in syncs]
        if all(j is not None and j.status is not JobStatus.SCHEDULED for j in jobs):
            break
        run_at = jobs[0].run_at  # type: ignore[union-attr]
        delays.append((run_at - clock.now()).total_seconds())
        clock.set(run_at)
    assert delays == [2, 4, 8]
    assert all(j is not None and j.status is JobStatus.COMPLETED and j.attempt == 4 for j in jobs)
    assert [e.type for e in jobs[0].errors] == ["ConnectionError"] * 3  # type: ignore[union-attr]
    next_fires = await app.schedules.anext_fires("daily-service-sync", 2)
    assert next_fires == [START.replace(day=23, minute=30), START.replace(day=24, minute=30)]
    await app.aclose()


class OneServiceGone(FlakyStatusApi):
    """Service 2 is gone at the provider (not retryable); the others sync."""

    async def fetch(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        from examples import service_sync

        if service["id"] == 2:
            raise service_sync.ServiceGone("service 2 was removed at the provider")
        return await super().fetch(service)


@pytest.mark.parametrize("kind", WORKFLOW_KINDS)
async def test_seed003_a_run_syncs_every_active_service_then_reports_even_after_a_failure(
    kind: str, tmp_path: Path
) -> None:
    from examples import service_sync

    clock = FakeClock(START)
    db = service_sync.SyncDatabase(str(tmp_path / "sync.db"))
    db.seed_demo()
    db.add_service("shared-ap-1")  # three active services now, one inactive
    async with isolated_url(kind, tmp_path) as url:
        app = service_sync.create_app(url, clock=clock, database=db, status_api=OneServiceGone())
        async with app:
            # Started by the daily schedule ...
            await fire_due(app, clock, START.replace(minute=30))
            await drain(app)
            [run] = (await app.alist_workflows()).workflows
            assert run.name == "service-sync" and run.status is WorkflowStatus.FAILED  # one sync failed
            assert [j.step for j in run.steps] == ["sync[0]", "sync[1]", "sync[2]", "report"]
            [report] = run.step("report")
            assert report.status is JobStatus.COMPLETED
            assert report.result == {
                "synced": ["shared-eu-1", "shared-ap-1"], "inserted": 4,
                "failed": [{"service_id": 2, "error": "service 2 was removed at the provider"}],
            }
            # ... or on demand, through the admin route.
            settings, secret = http_settings()
            asgi = create_asgi_app(HttpContext(app=app, manager=ServiceManager(), settings=settings))
            admin = {"Authorization": f"Bearer {issue_token(secret, role='admin', ttl=600)}"}
            transport = httpx.ASGITransport(app=asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:5050") as client:
                started = await client.post("/api/v1/sync/run", headers=admin)
                assert started.status_code == 202 and started.json()["services"] == 3
                await drain(app)
                shown = (await client.get(f"/api/v1/workflows/{started.json()['workflow']}", headers=admin)).json()
            assert [s["status"] for s in shown["steps"]] == ["completed", "failed", "completed", "completed"]
            assert shown["steps"][-1]["result"]["inserted"] == 0  # the records were stored by the first run


async def test_seed003_queue_concurrency_is_stored_at_server_start(tmp_path: Path) -> None:
    from examples import service_sync

    app = service_sync.create_app("memory://", database=service_sync.SyncDatabase(str(tmp_path / "s.db")))
    server = TaskServer(app, load_settings(http={"enabled": False}), only="services")
    await server.start()
    try:
        settings = await app.backend.queue_get(queue="sync")
        assert settings.concurrency == service_sync.CONCURRENCY
    finally:
        await server.stop()


# -- seed 002: background jobs -----------------------------------------------------------------
async def test_seed002_each_job_type_runs_and_a_second_run_duplicates_nothing() -> None:
    from examples import background_jobs as bj

    app = bj.create_app("memory://", clock=FakeClock(START))
    store = app.store
    await store.seed_demo()
    await store.records.put("county_records", "APN-77", {"owner": "Someone Else"})  # a title change
    payloads = {
        "darkwatch.scan": {"subscription_id": 3}, "voiceprint.batch": {}, "hometitle.scan": {"subscription_id": 3},
        "removebrokers.process": {}, "reports.generate": {"subscription_id": 3, "period": "weekly"},
        "notifications.send": {"user_id": 10, "template": "welcome"},
    }
    jobs = {task: await app.aenqueue(task, payload) for task, payload in payloads.items()}
    await drain(app)
    results = {task: (await app.aget_job(job.id)) for task, job in jobs.items()}
    assert {t: j.status for t, j in results.items()} == dict.fromkeys(payloads, JobStatus.COMPLETED)  # type: ignore[union-attr]
    assert results["darkwatch.scan"].result == {"checked": 2, "hits": 1, "new_alerts": 1}  # type: ignore[union-attr]
    assert results["hometitle.scan"].result == {"parcels": 1, "changes": 1}  # type: ignore[union-attr]
    assert results["voiceprint.batch"].result == {"analysed": 3}  # type: ignore[union-attr]
    assert results["removebrokers.process"].result == {"submitted": 2}  # type: ignore[union-attr]
    assert {r["status"] for r in (await store.records.all("removal_requests")).values()} == {"SUBMITTED"}
    assert len(await store.records.all("alerts")) == 2 and len(await store.records.all("reports")) == 1
    # The two alerts and the report each notified their owner once, plus the welcome message.
    assert sorted(m["template"] for m in (await store.records.all("sent")).values()) == [
        "alert.breach", "alert.title", "report.ready", "welcome"]
    # At-least-once delivery may run a job again: nothing is created twice.
    for task in ("darkwatch.scan", "hometitle.scan"):
        await app.aenqueue(task, payloads[task])
    await drain(app)
    assert len(await store.records.all("alerts")) == 2 and len(await store.records.all("sent")) == 4
    page = await app.alist_jobs(task="darkwatch.scan", status="completed")
    assert [j.result["new_alerts"] for j in page.jobs] == [0, 1]
    await app.aclose()


async def test_seed002_failed_delivery_retries_after_1_5_15_minutes() -> None:
    from examples import background_jobs as bj

    clock = FakeClock(START)
    app = bj.create_app("memory://", clock=clock, provider_failures=3)
    store = app.store
    await store.records.put("subscriptions", "1", {"user_id": 10, "tier": "basic"})
    job = await app.aenqueue("notifications.send", {"user_id": 10, "template": "welcome"})
    delays = []
    while True:
        await drain(app)
        job = await app.aget_job(job.id)  # type: ignore[assignment]
        if job.status is not JobStatus.SCHEDULED:
            break
        delays.append((job.run_at - clock.now()).total_seconds())  # type: ignore[operator]
        clock.set(job.run_at)  # type: ignore[arg-type]
    assert delays == [60, 300, 900]
    assert job.status is JobStatus.COMPLETED and job.attempt == 4 and len(job.errors) == 3
    assert len(await store.records.all("sent")) == 1
    store.provider_failures = 4  # one more failure than the policy allows
    job = await app.aenqueue("notifications.send", {"user_id": 10, "template": "second"})
    while (job := await app.aget_job(job.id)).status in (JobStatus.PENDING, JobStatus.SCHEDULED):  # type: ignore[union-attr]
        if job.run_at is not None and job.run_at > clock.now():
            clock.set(job.run_at)
        await drain(app)
    assert job.status is JobStatus.FAILED and job.attempt == 4
    await app.aclose()


async def test_seed002_tiers_as_schedule_sets() -> None:
    from examples import background_jobs as bj

    clock = FakeClock(START)  # Sunday 2026-11-22 06:00 UTC
    app = bj.create_app("memory://", clock=clock)
    store = app.store
    # The startup service gives every subscription of the database its tier's schedules.
    server = TaskServer(app, load_settings(http={"enabled": False}), only="services", clock=clock)
    await server.start()
    await server.stop()
    schedules = {s.name: s for s in await app.schedules.alist()}
    assert sorted(schedules) == [
        "subscription:1:darkwatch", "subscription:1:hometitle",
        "subscription:2:darkwatch", "subscription:2:hometitle", "subscription:2:reports",
        "subscription:3:darkwatch", "subscription:3:darkwatch-realtime", "subscription:3:hometitle",
        "subscription:3:reports",
    ]
    day = timedelta(days=1)
    monday, december = START.replace(hour=0) + day, datetime(2026, 12, 1, tzinfo=UTC)
    expected = {
        "subscription:1:darkwatch": december.replace(hour=2),   # Basic: monthly
        "subscription:1:hometitle": december.replace(hour=3),
        "subscription:2:darkwatch": monday.replace(hour=2),     # Plus: weekly, reports monthly
        "subscription:2:reports": december.replace(hour=6),
        "subscription:3:darkwatch": monday.replace(hour=2),     # Premium: daily, reports weekly
        "subscription:3:reports": monday.replace(hour=6),
        "subscription:3:darkwatch-realtime": START + timedelta(minutes=15),
    }
    assert {name: schedules[name].next_fire_at for name in expected} == expected
    assert await app.schedules.anext_fires("subscription:3:darkwatch", 3) == [
        monday.replace(hour=2), monday.replace(hour=2) + day, monday.replace(hour=2) + 2 * day]
    assert schedules["subscription:3:reports"].payload == {"period": "weekly", "subscription_id": 3}
    # A fire enqueues the scan (jittered up to 5 minutes), which runs and alerts once.
    await fire_due(app, clock, monday.replace(hour=2))
    clock.advance(bj.JITTER)
    await drain(app)
    scan = await app.alist_jobs(task="darkwatch.scan", status="completed")
    assert {j.payload["subscription_id"] for j in scan.jobs} >= {2, 3}
    assert any(a["subscription"] == 3 for a in (await store.records.all("alerts")).values())
    # A downgrade replaces the schedules; a cancellation removes them.
    await bj.schedule_for_subscription(app, 3, bj.Tier.BASIC)
    assert sorted(s.name for s in await app.schedules.alist(owner="subscription:3")) == [
        "subscription:3:darkwatch", "subscription:3:hometitle"]
    assert (await app.schedules.aget("subscription:3:darkwatch")).next_fire_at == december.replace(hour=2)  # type: ignore[union-attr]
    assert await bj.remove_schedules_for_subscription(app, 3) == 2
    assert await app.schedules.alist(owner="subscription:3") == []
    await app.aclose()


async def test_seed002_reminders_and_run_now_through_the_api() -> None:
    from examples import background_jobs as bj

    clock = FakeClock(START)
    app = bj.create_app("memory://", clock=clock)
    store = app.store
    await store.seed_demo()
    at = START + timedelta(days=3)
    first = await bj.remind(app, 10, "reminder.finish-profile", at)
    assert (await bj.remind(app, 10, "reminder.finish-profile", at)).id == first.id
    await drain(app)
    assert await store.records.all("sent") == {}  # not due yet
    clock.set(at)
    await drain(app)
    assert [m["template"] for m in (await store.records.all("sent")).values()] == ["reminder.finish-profile"]
    settings, secret = http_settings()
    asgi = create_asgi_app(HttpContext(app=app, manager=ServiceManager(), settings=settings))
    admin = {"Authorization": f"Bearer {issue_token(secret, role='admin', ttl=600)}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://127.0.0.1") as client:
        bad = await client.post("/api/v1/jobs", headers=admin, json={"task": "reports.generate", "payload": {}})
        assert bad.status_code == 422  # subscription_id is required: nothing is stored
        made = await client.post("/api/v1/jobs", headers=admin,
                                 json={"task": "reports.generate", "payload": {"subscription_id": 2}})
        assert made.status_code == 201, made.text
        await drain(app)
        status = (await client.get(f"/api/v1/jobs/{made.json()['id']}", headers=admin)).json()
        assert status["status"] == "completed" and status["result"]["alerts"] == 0
        upgraded = await client.post("/api/v1/schedules/sets/tier:premium/apply", headers=admin,
                                     json={"owner": "subscription:1", "payload": {"subscription_id": 1}})
        assert upgraded.status_code == 200, upgraded.text
        assert len(upgraded.json()) == len(bj.TIERS[bj.Tier.PREMIUM]) == 4
    await app.aclose()


# -- seed 001: the task server application -----------------------------------------------------
@pytest.fixture
async def task_server(tmp_path: Path) -> AsyncIterator[tuple[TaskServer, Any, Path]]:
    from examples import task_server as ts

    source = tmp_path / "events.jsonl"
    settings = load_settings(
        backend="memory://",
        http={"port": 0, "auth_enabled": False},
        worker={"poll_interval": 0.05},
        services={"collect-events": {"source": str(source), "interval": 0.05},
                  "collect-analytics": {"interval": 0.1}},
    )
    app = ts.create_app("memory://")
    resources = app.resources
    server = TaskServer(app, settings)
    await server.start()
    try:
        yield server, resources, source
    finally:
        await server.stop()


async def test_seed001_task_modules_run_under_the_task_server(task_server: tuple[TaskServer, Any, Path]) -> None:
    server, resources, source = task_server
    events = [
        {"uid": "e1", "namespace": "web", "reason": "Scheduled"},
        {"uid": "e2", "namespace": "web", "reason": "BackOff", "type": "Warning", "message": "crash loop"},
        {"uid": "e1", "namespace": "web", "reason": "Scheduled"},  # the watcher repeated one
    ]
    source.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"uid": "e3", "rea')  # half a line
    async def events() -> Any:
        return (await resources.tallies())[0]

    async def counted(n: int) -> bool:
        return sum((await events()).values()) == n

    await until(lambda: counted(2))
    assert await events() == {"web/Scheduled": 1, "web/BackOff": 1}
    assert [w["message"] for w in (await resources.tallies())[1]] == ["crash loop"]
    with source.open("a") as f:
        f.write('son": "Pulled"}\n')  # the rest of the line arrives
    await until(lambda: counted(3))

    async def snapshot_has_pulled() -> bool:
        return bool((await resources.latest()).get("events", {}).get("default/Pulled"))

    await until(snapshot_has_pulled)
    assert server.http is not None
    async with httpx.AsyncClient(base_url=server.http.url, timeout=10) as client:
        doc = (await client.get("/health/services")).json()
        assert doc["healthy"] is True and doc["status"] == "healthy"
        for service_id in ("collect-events", "collect-analytics", "worker", "scheduler", "http"):
            assert doc["services"][service_id]["status"] == "RUNNING", service_id
        assert doc["services"]["collect-events"]["last_success"] is not None
        latest = (await client.get("/api/v1/analytics")).json()
        assert latest["events"]["web/BackOff"] == 1 and "events" in latest["jobs"]


# -- seed 000: scheduler services for horizontal scaling ---------------------------------------
def write_csv(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def test_seed000_pipeline_services_under_the_manager(tmp_path: Path) -> None:
    from examples import scheduler_fleet as fleet

    inbox = tmp_path / "imports" / "inbox"
    write_csv(inbox / "acme" / "a.csv", "id,transcript\n1,I want a refund\n2,forgot my password\n3,hello\n")
    write_csv(inbox / "acme" / "b.csv", "id,transcript\n3,hello\n4,invoice is wrong\n")  # id 3 again
    write_csv(inbox / "globex" / "c.csv", "name\nno id column\n")
    pipeline = fleet.Pipeline(str(tmp_path / "pipeline.db"))
    settings = load_settings(
        backend="memory://", http={"port": 0, "auth_enabled": False}, worker={"poll_interval": 0.05},
        services={"csv-import": {"inbox": str(inbox), "batchSize": 2, "maxConcurrentImports": 2}},
    )
    server = TaskServer(fleet.create_app("memory://", pipeline=pipeline), settings)
    await server.start()
    try:
        manager = server.manager
        importer = manager.get("csv-import").service
        assert (importer.config.batch_size, importer.config.max_concurrency) == (2, 2)
        assert importer.config.interval == "*/10 * * * *" and importer.config.timeout == 300
        assert await manager.run_now("csv-import")  # two files a run: acme's
        assert pipeline.count("SELECT count(*) FROM imports") == 4  # the repeated row is skipped
        assert await manager.run_now("csv-import")  # globex's bad file is set aside
        assert (tmp_path / "imports" / "failed" / "globex" / "c.csv").exists()
        assert pipeline.rows("SELECT company, error FROM import_errors") == [("globex", "c.csv: no 'id' column")]
        assert sorted(p.name for p in (tmp_path / "imports" / "done" / "acme").iterdir()) == ["a.csv", "b.csv"]
        for stage in ("import-processing", "session-processing", "batch-processing"):
            assert await manager.run_now(stage), stage
        assert dict(pipeline.rows("SELECT external_id, category FROM sessions")) == {
            "1": "billing", "2": "account", "3": "general", "4": "billing"}
        # The batch stage handed the batch to a job, which the server's worker runs.
        await until(lambda: pipeline.count("SELECT count(*) FROM sessions WHERE status = 'DONE'") == 4)
        assert pipeline.rows("SELECT size, status FROM batches") == [(4, "SUBMITTED")]
        assert server.http is not None
        async with httpx.AsyncClient(base_url=server.http.url, timeout=10) as client:
            paused = await client.post("/api/v1/services/csv-import/pause")
            assert paused.status_code == 200 and paused.json()["status"] == "PAUSED"
            doc = (await client.get("/health/services")).json()
            assert doc["healthy"] is True and doc["totals"]["paused"] == 1
            stages = {k: v for k, v in doc["services"].items() if k.endswith(("import", "processing"))}
            assert {k: v["status"] for k, v in stages.items()} == {
                "csv-import": "PAUSED", "import-processing": "RUNNING",
                "session-processing": "RUNNING", "batch-processing": "RUNNING"}
            assert stages["csv-import"]["metrics"]["runs"] == 2
            assert stages["csv-import"]["last_success"] is not None
            assert (await client.post("/api/v1/services/csv-import/resume")).json()["status"] == "RUNNING"
    finally:
        await server.stop()


def test_seed000_standalone_runner_and_list(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKYARD_")}
    env.update(TASKYARD_BACKEND="memory://", PIPELINE_DB=str(tmp_path / "p.db"), PYTHONPATH=str(root),
               TASKYARD_SERVICES__CSV_IMPORT__INBOX=str(tmp_path / "inbox"), TASKYARD_HTTP__AUTH_ENABLED="false")
    command = [sys.executable, "-m", "taskyard", "--app", "examples.scheduler_fleet:app"]
    listed = subprocess.run([*command, "services", "list", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    user = {row["id"]: row for row in json.loads(listed.stdout) if row["user"]}
    assert sorted(user) == ["batch-processing", "csv-import", "import-processing", "session-processing"]
    assert user["csv-import"]["critical"] is True
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([*command, "run", "--service", "csv-import", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        doc = wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/health/services", timeout=5).json(),
                       what="the standalone runner's health")
        assert sorted(doc["services"]) == ["csv-import", "http"]
        assert doc["services"]["csv-import"]["status"] == "RUNNING" and doc["healthy"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "server.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
