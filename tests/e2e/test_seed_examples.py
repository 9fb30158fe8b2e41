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
ADMIN = {"Authorization": f"Bearer {issue_token(SECRET, role='admin', ttl=600)}"}


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
    listing = fleet.get("/api/admin/schedulers", headers=ADMIN).json()
    assert listing["instance"] == "csv-import-eu-0" and listing["region"] == "eu"
    rows = {r["id"]: r for r in listing["schedulers"]}
    assert (rows["csv-import"]["interval"], rows["csv-import"]["batchSize"], rows["csv-import"]["timeout"]) == (
        "*/7 * * * *", 1, 45.0)
    assert rows["session-processing"]["batchSize"] == 25 and rows["csv-import"]["critical"] is True
    # Trigger twice (one file a run): only the EU companies' files are imported.
    for _ in range(2):
        done = fleet.post("/api/admin/schedulers", headers=ADMIN,
                          json={"action": "trigger", "schedulerId": "csv-import"})
        assert done.status_code == 200, done.text
    assert sorted(p.parent.name for p in (tmp_path / "imports" / "done").glob("*/*.csv")) == ["globex", "initech"]
    assert (tmp_path / "imports" / "inbox" / "acme" / "a.csv").exists()  # the US instance's
    assert fleet.get("/api/admin/schedulers/health").json()["details"]["csv-import"]["lastSuccess"] is not None
    paused = fleet.post("/api/admin/schedulers", headers=ADMIN, json={"action": "pause", "schedulerId": "csv-import"})
    assert paused.json()["scheduler"]["status"] == "PAUSED"
    assert fleet.post("/api/admin/schedulers", headers=ADMIN,
                      json={"action": "trigger", "schedulerId": "worker"}).status_code == 404
    assert fleet.stop() == 0


def test_seed000_scheduler_enabled_false_is_the_app_container(tmp_path: Path, start: Any) -> None:
    env = {"TASKYARD_BACKEND": f"sqlite:///{tmp_path / 'taskyard.db'}", "SCHEDULER_ENABLED": "false",
           "SCHEDULER_AUTO_RESTART": "false"}
    app = start("scheduler_fleet", ["run"], env)
    doc = app.get("/api/admin/schedulers/health").json()
    assert doc["healthy"] is True and doc["schedulers"] == {"total": 0, "running": 0, "errors": 0}
    rows = {r["id"]: r for r in app.get("/api/admin/schedulers", headers=ADMIN).json()["schedulers"]}
    assert {r["status"] for r in rows.values()} == {"STOPPED"} and rows["csv-import"]["critical"] is False
    # The standalone runner of the same image still runs the scheduler it names.
    runner = start("scheduler_fleet", ["run", "--service", "csv-import"], env)
    doc = runner.get("/api/admin/schedulers/health").json()
    assert doc["schedulers"] == {"total": 1, "running": 1, "errors": 0} and list(doc["details"]) == ["csv-import"]
