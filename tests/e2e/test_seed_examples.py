"""The seed examples as their users run them: real `taskyard` processes from the command line,
the seed's own environment variables, the seed's routes, and split deployments (API, worker,
scheduler, replicas) sharing one database."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskyard.http.auth import issue_token
from tests.e2e.test_server import free_port, wait_for
from tests.support.processes import ROOT

SECRET = secrets.token_urlsafe(48)
def admin() -> dict[str, str]:
    """Admin credentials made now (a token made at import would expire before a test that a
    long parallel run starts 10 minutes later: a 401 seen in CI)."""
    return {"Authorization": f"Bearer {issue_token(SECRET, role='admin', ttl=600)}"}


class Example:
    """`taskyard --app examples.<name>:app ARGS` in `workdir`, with the seed's `env`."""

    def __init__(self, workdir: Path, name: str, args: list[str], env: dict[str, str], *,
                 http: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}-{self.port}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith("TASKYARD_")}
        full.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", TASKYARD_HTTP__JWT_SECRET=SECRET,
                    TASKYARD_WORKER__POLL_INTERVAL="0.1", **env)
        port = ["--port", str(self.port)] if http else []
        command = [sys.executable, "-m", "taskyard", "--app", f"examples.{name}:app", *args, *port]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(command, cwd=workdir, env=full, stdout=log, stderr=subprocess.STDOUT)

    def logs(self) -> str:
        return self.log_path.read_text()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kwargs)

    def wait_up(self) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.logs()}")
            return self.get("/health").status_code == 200

        wait_for(up, what=f"{self.log_path.name} to answer /health")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """Start example processes; every one still running is stopped at the end."""
    started: list[Example] = []

    def starting(name: str, args: list[str], env: dict[str, str], *, http: bool = True,
                 wait: bool = True) -> Example:
        example = Example(tmp_path, name, args, env, http=http)
        started.append(example)
        if wait and http:
            example.wait_up()
        return example

    yield starting
    for example in started:
        example.stop()


# -- seed 000: the scheduler fleet -------------------------------------------------------------
def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_seed000_health_document_routes_and_region_from_the_seed_environment(tmp_path: Path, start: Any) -> None:
    write(tmp_path / "imports" / "companies.csv", "company,region\nacme,us\nglobex,eu\ninitech,eu\n")
    for company in ("acme", "globex", "initech"):
        write(tmp_path / "imports" / "inbox" / company / "a.csv", "id,transcript\n1,refund\n")
    env = {"TASKYARD_BACKEND": f"sqlite:///{tmp_path / 'taskyard.db'}", "PIPELINE_DB": "pipeline.db",
           "REGION": "eu", "CSV_COMPANIES_FILTER": "region:eu", "SCHEDULER_INSTANCE_ID": "csv-import-eu-0",
           "CSV_IMPORT_BATCH_SIZE": "1", "CSV_IMPORT_TIMEOUT": "45000", "CSV_IMPORT_INTERVAL": "*/7 * * * *",
           "SESSION_PROCESSING_BATCH_SIZE": "25"}
    fleet = start("scheduler_fleet", ["run"], env)
    health = fleet.get("/api/admin/schedulers/health")  # no credentials: the probes' path
    assert health.status_code == 200, health.text
    doc = health.json()
    assert list(doc) == ["healthy", "status", "timestamp", "schedulers", "details"]
    assert doc["healthy"] is True and doc["status"] == "healthy"
    assert doc["schedulers"] == {"total": 4, "running": 4, "errors": 0}  # not taskyard's own services
    assert sorted(doc["details"]) == ["batch-processing", "csv-import", "import-processing", "session-processing"]
    assert doc["details"]["csv-import"] == {"status": "RUNNING", "healthy": True, "lastSuccess": None}
    assert fleet.get("/api/admin/schedulers").status_code == 401
    listing = fleet.get("/api/admin/schedulers", headers=admin()).json()
    assert listing["instance"] == "csv-import-eu-0" and listing["region"] == "eu"
    rows = {r["id"]: r for r in listing["schedulers"]}
    assert (rows["csv-import"]["interval"], rows["csv-import"]["batchSize"], rows["csv-import"]["timeout"]) == (
        "*/7 * * * *", 1, 45.0)
    assert rows["session-processing"]["batchSize"] == 25 and rows["csv-import"]["critical"] is True
    # Trigger twice (one file a run): only the EU companies' files are imported.
    for _ in range(2):
        done = fleet.post("/api/admin/schedulers", headers=admin(),
                          json={"action": "trigger", "schedulerId": "csv-import"})
        assert done.status_code == 200, done.text
    assert sorted(p.parent.name for p in (tmp_path / "imports" / "done").glob("*/*.csv")) == ["globex", "initech"]
    assert (tmp_path / "imports" / "inbox" / "acme" / "a.csv").exists()  # the US instance's
    assert fleet.get("/api/admin/schedulers/health").json()["details"]["csv-import"]["lastSuccess"] is not None
    paused = fleet.post("/api/admin/schedulers", headers=admin(), json={"action": "pause", "schedulerId": "csv-import"})
    assert paused.json()["scheduler"]["status"] == "PAUSED"
    assert fleet.post("/api/admin/schedulers", headers=admin(),
                      json={"action": "trigger", "schedulerId": "worker"}).status_code == 404
    assert fleet.stop() == 0


def test_seed000_scheduler_enabled_false_is_the_app_container(tmp_path: Path, start: Any) -> None:
    env = {"TASKYARD_BACKEND": f"sqlite:///{tmp_path / 'taskyard.db'}", "SCHEDULER_ENABLED": "false",
           "SCHEDULER_AUTO_RESTART": "false"}
    app = start("scheduler_fleet", ["run"], env)
    doc = app.get("/api/admin/schedulers/health").json()
    assert doc["healthy"] is True and doc["schedulers"] == {"total": 0, "running": 0, "errors": 0}
    rows = {r["id"]: r for r in app.get("/api/admin/schedulers", headers=admin()).json()["schedulers"]}
    assert {r["status"] for r in rows.values()} == {"STOPPED"} and rows["csv-import"]["critical"] is False
    # The standalone runner of the same image still runs the scheduler it names.
    runner = start("scheduler_fleet", ["run", "--service", "csv-import"], env)
    doc = runner.get("/api/admin/schedulers/health").json()
    assert doc["schedulers"] == {"total": 1, "running": 1, "errors": 0} and list(doc["details"]) == ["csv-import"]


# -- seed 002: background jobs in separate processes -------------------------------------------
def records_of(url: str, kind: str) -> dict[str, Any]:
    """What the example stored in the app's database (read the way the example reads it)."""
    import asyncio
    from types import SimpleNamespace

    from examples.records import Records

    return asyncio.run(Records(SimpleNamespace(backend=SimpleNamespace(url=url))).all(kind))


def test_seed002_api_worker_and_scheduler_as_separate_processes(tmp_path: Path, start: Any) -> None:
    url = f"sqlite:///{tmp_path / 'taskyard.db'}"
    env = {"TASKYARD_BACKEND": url}
    scheduler = start("background_jobs", ["run", "--only", "scheduler,maintenance,services"], env)
    api = start("background_jobs", ["run", "--only", "api"], env)
    # The scheduler process gave every subscription of the database its tier's schedules.
    names = wait_for(lambda: [s["name"] for s in api.get("/api/v1/schedules", headers=admin()).json()
                              if s["name"].startswith("subscription:")] or None, what="the tier schedules")
    assert len(names) == 9 and "subscription:3:darkwatch-realtime" in names
    # Run a job now through the API: it waits until a worker process exists.
    made = api.post("/api/v1/jobs", headers=admin(), json={"task": "darkwatch.scan", "payload": {"subscription_id": 3}})
    assert made.status_code == 201, made.text
    start("background_jobs", ["worker", "--queues", "scans,analysis,reports,notifications"], env, http=False)

    def finished(job_id: str) -> Any:
        body = api.get(f"/api/v1/jobs/{job_id}", headers=admin()).json()
        return body if body["status"] in ("completed", "failed") else None

    job = wait_for(lambda: finished(made.json()["id"]), what="the scan on the worker")
    assert job["status"] == "completed" and job["result"] == {"checked": 2, "hits": 1, "new_alerts": 1}
    # The alert and its notification are in the app's database, written by the worker process.
    assert list(records_of(url, "alerts")) == ["darkwatch:cy@work.example:forum-2025"]
    sent = wait_for(lambda: records_of(url, "sent") or None, what="the alert's notification")
    assert [m["template"] for m in sent.values()] == ["alert.breach"]
    # Running it again (at-least-once) creates nothing twice.
    again = api.post("/api/v1/jobs", headers=admin(), json={"task": "darkwatch.scan", "payload": {"subscription_id": 3}})
    assert wait_for(lambda: finished(again.json()["id"]), what="the second scan")["result"]["new_alerts"] == 0
    assert len(records_of(url, "alerts")) == 1 and len(records_of(url, "sent")) == 1
    assert scheduler.stop() == 0 and api.stop() == 0


# -- seed 001: analytics with two replicas ------------------------------------------------------
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_seed001_analytics_is_the_same_on_two_replicas(tmp_path: Path, start: Any, kind: str) -> None:
    from tests.support.backends import isolated_url

    async with isolated_url(kind, tmp_path) as url:
        (tmp_path / "k8s-events.jsonl").write_text(
            '{"uid": "e1", "namespace": "web", "reason": "BackOff", "type": "Warning"}\n'
            '{"uid": "e2", "namespace": "web", "reason": "Pulled"}\n')
        env = {"TASKYARD_BACKEND": url, "TASKYARD_SERVICES__COLLECT_EVENTS__INTERVAL": "0.2",
               "TASKYARD_SERVICES__COLLECT_ANALYTICS__INTERVAL": "0.5"}
        replicas = [start("task_server", ["run"], env) for _ in range(2)]

        def latest(replica: Example) -> Any:
            return replica.get("/api/v1/analytics", headers=admin()).json()

        for replica in replicas:
            doc = wait_for(lambda r=replica: (d := latest(r)).get("events", {}).get("web/Pulled") and d,
                           what="an analytics snapshot with both events")
            assert doc["events"] == {"web/BackOff": 1, "web/Pulled": 1} and doc["warnings"] == 1


# -- seed 003: the seed's Redis variables -------------------------------------------------------
async def test_seed003_redis_host_port_password_pick_the_backend(tmp_path: Path, start: Any) -> None:
    import redis.asyncio as aioredis

    from tests.support.redis import owned_server

    password = secrets.token_urlsafe(16)
    async with owned_server() as server:
        plain = aioredis.from_url(server.url)
        await plain.config_set("requirepass", password)
        await plain.aclose()
        env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(server.port), "REDIS_PASSWORD": password}
        sync = start("service_sync", ["run"], env)
        assert sync.get("/ready").json()["backend"] == "ok"
        queued = sync.post("/api/v1/sync/all", headers=admin())
        assert queued.status_code == 202 and queued.json()["queued"] == 2
        client = aioredis.from_url(server.url, password=password)
        try:
            assert await client.dbsize() > 0  # the jobs are in the seed's Redis
        finally:
            await client.aclose()
        assert sync.stop() == 0
        assert password not in sync.logs()
