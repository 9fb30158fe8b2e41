"""`taskyard run` as real processes: restarts, ERROR reporting, roles sharing one SQLite file,
SIGTERM draining, `services list`, and one-line errors for bad settings."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.waiting import wait_until_sync

APP_SOURCE = '''
import os, time
from pathlib import Path
from taskyard import PeriodicService, PeriodicServiceConfig, Retry, Taskyard
from taskyard.services.base import Service

app = Taskyard()
OUT = Path(os.environ["TEST_OUT"])

@app.task("mark")
async def mark(payload: dict) -> str:
    with (OUT / "marks").open("a") as f:
        f.write(payload.get("what", "?") + "\\n")
    return "ok"

@app.task("boom", queue="risky", retry=Retry(attempts=1))
async def boom(payload: dict) -> str:
    raise RuntimeError("boom")

@app.task("slow")
def slow(payload: dict) -> str:
    (OUT / f"started-{payload['n']}").touch()
    time.sleep(float(payload.get("seconds", 1.5)))
    (OUT / f"finished-{payload['n']}").touch()
    return "done"

if os.environ.get("TEST_SCHEDULE"):
    app.schedule("tick", every=1, task="mark", payload={"what": "tick"})

class Flaky(Service):
    """Critical: its main loop dies on the first start only."""
    starts = 0
    async def run(self):
        Flaky.starts += 1
        if Flaky.starts == 1:
            raise RuntimeError("first start fails")
        await self.stopping.wait()

class Broken(Service):
    """Not critical: always dies."""
    async def run(self):
        raise RuntimeError("always broken")

class Importer(PeriodicService):
    """Periodic user service, configured from settings; writes the batch it would take."""
    def __init__(self, app):
        super().__init__(config=PeriodicServiceConfig(interval=3600, batch_size=10, max_concurrency=5))
    async def execute(self):
        (OUT / "imported").write_text(f"{self.config.batch_size} {self.config.max_concurrency}")

class AlwaysFails(PeriodicService):
    """Every run fails (a partner API that is down for good)."""
    def __init__(self, app):
        super().__init__(config=PeriodicServiceConfig(interval=0.05))
    async def execute(self):
        raise RuntimeError("partner API unreachable")

if os.environ.get("TEST_SERVICES"):
    app.service("flaky", critical=True)(Flaky)
    app.service("broken")(Broken)
app.service("csv-import", critical=True, auto_start=bool(os.environ.get("TEST_IMPORTER")))(Importer)
if os.environ.get("TEST_FAILING"):
    app.service("fails-critical", critical=True)(AlwaysFails)
    app.service("fails")(AlwaysFails)
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """`wait_until_sync`, where a server that does not answer yet counts as not yet."""

    def check() -> Any:
        try:
            return predicate()
        except (httpx.HTTPError, OSError):
            return None

    return wait_until_sync(check, timeout=timeout, what=what)


def client_app(url: str) -> Any:
    """An app on the servers' backend that knows the task names (to enqueue and read)."""
    from taskyard import Taskyard

    client = Taskyard(url)
    for name in ("mark", "slow", "boom"):
        client.task(name, queue="risky" if name == "boom" else "default")(lambda payload: None)
    return client


def sqlite_available() -> bool:
    try:
        return hasattr(importlib.import_module("taskyard.backends.sqlite"), "SqliteBackend")
    except ImportError:
        return False


needs_sqlite = pytest.mark.skipif(not sqlite_available(), reason="the SQLite backend is not in this tree yet")


class Server:
    """One `taskyard run` subprocess with its own port and log file."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "taskyard", "--app", "srvapp:app", "run", "--port", str(self.port), *args],
            cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def wait_healthy(self) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            return self.get("/health").status_code == 200

        wait_for(up, what="the server to answer /health")

    def logs(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "srvapp.py").write_text(APP_SOURCE)
    (tmp_path / "out").mkdir()
    return tmp_path


def base_env(workdir: Path, backend: str = "memory://", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKYARD_")}
    env.update(
        TASKYARD_BACKEND=backend,
        TASKYARD_LOGGING__FORMAT="json",
        TASKYARD_WORKER__POLL_INTERVAL="0.1",
        TASKYARD_MANAGER__RESTART_INITIAL_DELAY="0.05",
        TEST_OUT=str(workdir / "out"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def running(workdir: Path, args: list[str], env: dict[str, str]) -> Iterator[Server]:
    server = Server(workdir, args, env)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.kill()


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_critical_service_restarts_and_non_critical_stays_in_error(workdir: Path) -> None:
    env = base_env(workdir, TEST_SERVICES="1")
    with running(workdir, [], env) as server:

        def settled() -> dict[str, Any] | None:
            doc = server.get("/health/services").json()
            services = doc["services"]
            ok = services["flaky"]["status"] == "RUNNING" and services["broken"]["status"] == "ERROR"
            return doc if ok else None

        doc = wait_for(settled, what="flaky to recover and broken to fail")
        assert doc["services"]["flaky"]["restarts"] == 1
        assert doc["services"]["flaky"]["healthy"] is True
        assert doc["services"]["broken"] | {"metrics": None} == doc["services"]["broken"] | {
            "metrics": None, "healthy": False, "status": "ERROR", "restarts": 0,
            "error": "RuntimeError: always broken", "critical": False,
        }
        assert doc["status"] == "degraded" and doc["totals"]["error"] == 1
        ready = server.get("/ready")
        assert ready.status_code == 200 and ready.json()["degraded"] == ["broken"]
        values = metric_samples(server.get("/metrics").text)
        assert values[("taskyard_service_restarts", (("service", "flaky"),))] == 1
        assert values[("taskyard_service_status", (("service", "broken"), ("status", "ERROR")))] == 1
        assert server.stop() == 0
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    assert any(r.get("service_id") == "flaky" and "restarting" in r["message"] for r in lines)


def test_service_options_from_the_environment_reach_the_service_in_any_case(workdir: Path) -> None:
    (workdir / "taskyard.toml").write_text('[services.csv-import]\nbatchSize = 5\nmaxConcurrentImports = 2\n')
    env = base_env(
        workdir, TEST_IMPORTER="1", TASKYARD_SERVICES__CSV_IMPORT__RUN_ON_START="true",
        TASKYARD_SERVICES__CSV_IMPORT__BATCHSIZE="20",  # as docs/configuration.md writes it
    )
    with running(workdir, ["--only", "services"], env) as server:
        imported = workdir / "out" / "imported"
        wait_for(lambda: imported.exists() and imported.read_text(), what="the importer's first run")
        assert imported.read_text() == "20 2"  # the variable beats the file; the file beats the code
        details = server.get("/health/services").json()["services"]["csv-import"]["details"]
        assert (details["batch_size"], details["max_concurrency"]) == (20, 2)
        assert server.stop() == 0


def test_a_misspelt_service_option_fails_the_start_naming_it(workdir: Path) -> None:
    result = run_cli(workdir, ["run"], base_env(workdir, TASKYARD_SERVICES__CSV_IMPORT__BATCHSIZ="20"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: unknown setting 'services.csv-import.batchsiz': service 'csv-import' has no option "
        "'batchsiz'; did you mean 'batch_size'? (its options: interval, timeout, jitter, retries, "
        "run_on_start, leader_only, batch_size, max_concurrency, max_consecutive_failures; a service "
        "reads more of them by naming them in its `extra_options`)"
    ]


def test_periodic_services_that_always_fail_go_to_error_and_critical_ones_restart(workdir: Path) -> None:
    key = secrets.token_urlsafe(32)
    env = base_env(
        workdir, TEST_FAILING="1",
        TASKYARD_SERVICES__FAILS__MAX_CONSECUTIVE_FAILURES="3",
        TASKYARD_SERVICES__FAILS_CRITICAL__MAXCONSECUTIVEFAILURES="2",
        TASKYARD_MANAGER__MAX_RESTARTS="2",
        TASKYARD_HTTP__JWT_SECRET=secrets.token_urlsafe(48),
        TASKYARD_HTTP__API_KEYS=json.dumps([{"key": key, "role": "admin", "name": "ops"}]),
    )
    admin = {"Authorization": f"Bearer {key}"}
    with running(workdir, ["--only", "services,api"], env) as server:
        def settled() -> dict[str, Any] | None:
            doc = server.get("/health/services").json()
            critical, plain = doc["services"]["fails-critical"], doc["services"]["fails"]
            return doc if critical["gave_up"] and plain["status"] == "ERROR" else None

        doc = wait_for(settled, what="both services to end in ERROR")
        plain, critical = doc["services"]["fails"], doc["services"]["fails-critical"]
        assert plain["metrics"]["failures"] == 3 and plain["restarts"] == 0 and not plain["healthy"]
        assert plain["error"] == (
            "3 runs failed in a row (max_consecutive_failures=3); last: RuntimeError: partner API unreachable"
        )
        # Restarted twice (manager.max_restarts), two failed runs per start, then left in ERROR.
        assert (critical["status"], critical["restarts"], critical["metrics"]["failures"]) == ("ERROR", 2, 6)
        assert doc["status"] == "unhealthy" and doc["totals"]["error"] == 2
        assert server.get("/health/services").status_code == 503
        health = server.get("/health").json()
        assert health["status"] == "degraded" and set(health["services_in_error"]) == {"fails", "fails-critical"}
        ready = server.get("/ready")
        assert ready.status_code == 503 and ready.json()["degraded"] == ["fails"]
        assert ready.json()["reasons"] == [
            "critical service 'fails-critical' is ERROR: 2 runs failed in a row "
            "(max_consecutive_failures=2); last: RuntimeError: partner API unreachable"
        ]
        values = metric_samples(server.get("/metrics").text)
        assert values[("taskyard_service_restarts", (("service", "fails-critical"),))] == 2
        listed = {s["id"]: s for s in httpx.get(server.url + "/api/v1/services", headers=admin).json()}
        assert (listed["fails-critical"]["restarts"], listed["fails-critical"]["gave_up"]) == (2, True)

        restarted = httpx.post(server.url + "/api/v1/services/fails-critical/restart", headers=admin)
        assert restarted.status_code == 200, restarted.text
        body = restarted.json()
        assert (body["status"], body["restarts"], body["gave_up"]) == ("RUNNING", 3, False)
        started = httpx.post(server.url + "/api/v1/services/start-all", headers=admin)
        assert started.status_code == 200, started.text
        assert {s["id"]: s["status"] for s in started.json()}["fails"] == "RUNNING"
        viewer = httpx.post(server.url + "/api/v1/services/start-all")
        assert viewer.status_code == 401
        assert server.stop() == 0
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    audited = [r["message"] for r in lines if r["logger"] == "taskyard.http.audit"]
    assert any(m.startswith("admin action service.restart on fails-critical by") for m in audited)
    assert any(m.startswith("admin action service.start-all on services by") for m in audited)


def test_sigterm_lets_in_flight_jobs_finish_and_exits_zero(workdir: Path) -> None:
    out = workdir / "out"
    env = base_env(workdir, TEST_IMPORTER="1", TASKYARD_SERVICES__CSV_IMPORT__RUN_ON_START="true")
    with running(workdir, ["--only", "worker,services"], env) as server:
        wait_for(lambda: (out / "imported").exists(), what="the user service's first run")
        assert server.stop() == 0
    assert '"task server stopped"' in server.logs()


@needs_sqlite
def test_sigterm_drains_and_releases_leadership(workdir: Path) -> None:
    import asyncio

    out = workdir / "out"
    url = f"sqlite:///{workdir / 'shared.db'}"
    env = base_env(workdir, backend=url, TASKYARD_WORKER__DRAIN_TIMEOUT="20")
    with running(workdir, [], env) as server:
        client = client_app(url)
        try:
            client.enqueue("slow", {"n": 1, "seconds": 1.5})
            wait_for(lambda: (out / "started-1").exists(), what="the job to start")

            async def leaders() -> list[Any]:
                await client.open()
                try:
                    return [await client.backend.leader_get(name=n) for n in ("scheduler", "maintenance")]
                finally:
                    await client.aclose()

            assert all(asyncio.run(leaders()))  # one process runs both duties: it leads both
            assert not (out / "finished-1").exists()
            assert server.stop() == 0
            assert (out / "finished-1").exists()  # in-flight job finished before exit
            jobs = client.list_jobs(task="slow").jobs
            assert [j.status.value for j in jobs] == ["completed"]
            assert asyncio.run(leaders()) == [None, None]  # leadership released, not left to expire
        finally:
            client.close()


@needs_sqlite
def test_worker_and_scheduler_processes_share_one_sqlite_file(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'shared.db'}"
    env = base_env(
        workdir, backend=url, TEST_SCHEDULE="1",
        TASKYARD_MAINTENANCE__PROMOTE_INTERVAL="0.2", TASKYARD_SCHEDULER__TICK_INTERVAL="0.2",
    )
    with running(workdir, ["--only", "scheduler,maintenance"], env) as upkeep, \
            running(workdir, ["--only", "worker"], env) as worker:
        names = lambda s: set(s.get("/health/services").json()["services"])  # noqa: E731
        assert "worker" not in names(upkeep) and "scheduler" in names(upkeep)
        assert names(worker) == {"http", "worker", "worker-rescuer"}
        client = client_app(url)
        try:
            delayed = client.enqueue("mark", {"what": "delayed"}, delay=0.5)
            marks = workdir / "out" / "marks"

            def both_ran() -> bool:
                text = marks.read_text() if marks.exists() else ""
                return "tick" in text and "delayed" in text

            wait_for(both_ran, what="a scheduled fire and a delayed job to run")
            assert client.get_job(delayed.id).status.value == "completed"  # type: ignore[union-attr]
        finally:
            client.close()
        assert worker.stop() == 0 and upkeep.stop() == 0


@needs_sqlite
@pytest.mark.parametrize("jobs", ["debug", "OFF", None])
def test_the_worker_logs_a_line_when_each_job_starts_and_ends(workdir: Path, jobs: str | None) -> None:
    url = f"sqlite:///{workdir / 'jobs.db'}"
    client = client_app(url)
    try:
        done = client.enqueue("mark", {"what": "payload-marker"})
        failed = client.enqueue("boom", {"what": "payload-marker"})
    finally:
        client.close()
    levels = {"TASKYARD_LOGGING__LEVEL": "DEBUG", "TASKYARD_LOGGING__JOBS": jobs} if jobs else {}
    env = base_env(workdir, backend=url, **levels)  # by default: INFO, and the end line at INFO
    result = run_cli(workdir, ["worker", "--burst", "--no-maintenance"], env)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    lines = [r for r in records if r["logger"] == "taskyard.jobs"]
    assert "payload-marker" not in result.stderr  # payloads (and results) never reach the log
    if jobs == "OFF":
        assert lines == [] and any(r["logger"] == "taskyard.worker" for r in records)
        return
    by_job = {(r["job_id"], r["event"]): r for r in lines}
    if jobs is None:  # a busy worker logs one line per job: its end
        assert sorted((r["task"], r["event"], r["level"], r["outcome"]) for r in lines) == [
            ("boom", "job.finished", "INFO", "failed"), ("mark", "job.finished", "INFO", "completed"),
        ]
        return
    assert len(lines) == len(by_job) == 4
    for job, task, queue, outcome in ((done, "mark", "default", "completed"), (failed, "boom", "risky", "failed")):
        start, end = by_job[(job.id, "job.started")], by_job[(job.id, "job.finished")]
        assert start["level"] == "DEBUG" and end["level"] == "DEBUG"  # logging.jobs = "debug"
        assert start | {"time": None, "worker_id": None} == {
            "time": None, "level": "DEBUG", "logger": "taskyard.jobs", "worker_id": None,
            "message": f"job {job.id} started ({task}, attempt 1, queue {queue})",
            "event": "job.started", "job_id": job.id, "task": task, "queue": queue, "attempt": 1,
            "outcome": "started",
        }
        assert (end["task"], end["queue"], end["attempt"], end["outcome"]) == (task, queue, 1, outcome)
        assert isinstance(end["duration"], float) and 0 <= end["duration"] < 30
        assert end["message"] == f"job {job.id} {outcome} ({task}, attempt 1, queue {queue}) in {end['duration']:.3f}s"
        assert end["worker_id"] == start["worker_id"] and ":" in end["worker_id"]


def run_cli(workdir: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskyard", "--app", "srvapp:app", *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["run"], {"TASKYARD_BACKEND": "nosuchdb://x"}, "'backend'"),
        (["run"], {"TASKYARD_SERVICES__CSV_IMPORT__INTERVAL": "61 * * * *"}, "'services.csv-import.interval'"),
        (["run", "--concurrency", "-1"], {}, "'worker.concurrency'"),
        (["run"], {"TASKYARD_WORKER__CONCURRENCY": "-3"}, "'worker.concurrency'"),
        (["run", "--host", "0.0.0.0"], {"TASKYARD_HTTP__AUTH_ENABLED": "false"}, "http.auth_enabled"),
        (["run", "--only", "wroker"], {}, "did you mean 'worker'?"),
        (["run", "--service", "nope"], {}, "--service"),
    ],
)
def test_misconfiguration_fails_the_start_with_one_line(
    workdir: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    result = run_cli(workdir, args, base_env(workdir) | env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and named in lines[0]


@pytest.mark.parametrize(
    ("env", "code", "named"),
    [
        ({"TASKYARD_BACKEND": "nosuchdb://x"}, 2, "scheme 'nosuchdb' is not supported"),
        ({"TASKYARD_BACKEND": f"redis://127.0.0.1:{free_port()}/0"}, 1, "is unavailable"),
    ],
)
def test_other_commands_report_backend_errors_in_one_line(
    workdir: Path, env: dict[str, str], code: int, named: str
) -> None:
    result = run_cli(workdir, ["jobs", "list"], base_env(workdir) | env)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], result.stderr


@needs_sqlite
def test_jobs_list_and_show_report_rescues(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'cli.db'}"
    client = client_app(url)
    try:
        job = client.enqueue("mark", {"what": "x"})
    finally:
        client.close()
    env = base_env(workdir, backend=url)
    shown = json.loads(run_cli(workdir, ["jobs", "show", job.id, "--json"], env).stdout)
    assert (shown["rescues"], shown["max_rescues"]) == (0, 3)
    listed = run_cli(workdir, ["jobs", "list"], env | {"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    assert "rescues" in listed.stdout and "0/3" in listed.stdout


def test_services_list_and_a_single_service_process(workdir: Path) -> None:
    env = base_env(workdir)
    listed = json.loads(run_cli(workdir, ["services", "list", "--json"], env).stdout)
    ids = [row["id"] for row in listed]
    assert ids[:2] == ["http", "leader:maintenance"] and "worker" in ids and "csv-import" in ids
    assert "leader:scheduler" in ids
    by_id = {row["id"]: row for row in listed}
    assert by_id["scheduler"]["lease"] == "scheduler" and by_id["rescuer"]["lease"] == "maintenance"
    assert by_id["worker"]["lease"] is None
    assert (by_id["csv-import"]["restarts"], by_id["csv-import"]["max_consecutive_failures"]) == (True, 5)
    assert (by_id["rescuer"]["restarts"], by_id["rescuer"]["max_consecutive_failures"]) == (True, 0)
    fixed = base_env(
        workdir, TASKYARD_MANAGER__AUTO_RESTART="false", TASKYARD_SERVICES__CSV_IMPORT__MAX_CONSECUTIVE_FAILURES="2"
    )
    shown = {r["id"]: r for r in json.loads(run_cli(workdir, ["services", "list", "--json"], fixed).stdout)}
    assert (shown["csv-import"]["restarts"], shown["csv-import"]["max_consecutive_failures"]) == (False, 2)
    table = run_cli(workdir, ["services", "list"], env | {"COLUMNS": "250"}).stdout
    assert "5 failed runs" in table and "with backoff" in table
    worker_only = json.loads(run_cli(workdir, ["services", "list", "--json", "--only", "worker,maintenance"], env).stdout)
    assert {row["lease"] for row in worker_only} == {None, "maintenance"}  # never the scheduler's
    alone = json.loads(run_cli(workdir, ["services", "list", "--json", "--service", "csv-import"], env).stdout)
    assert [row["id"] for row in alone] == ["http", "csv-import"]
    env = base_env(workdir, TASKYARD_SERVICES__CSV_IMPORT__INTERVAL="0.2")
    with running(workdir, ["--service", "csv-import"], env) as server:
        wait_for(lambda: (workdir / "out" / "imported").exists(), what="the service to run")
        doc = server.get("/health/services").json()
        assert set(doc["services"]) == {"http", "csv-import"} and doc["healthy"] is True
        assert server.stop() == 0


@needs_sqlite
def test_services_leaders_reads_who_holds_each_lease(workdir: Path) -> None:
    import asyncio

    url = f"sqlite:///{workdir / 'leases.db'}"
    client = client_app(url)

    async def elect() -> None:
        await client.open()
        try:
            await client.backend.leader_attempt_elect(name="scheduler", holder="node-a:321:qwerty", ttl=600)
        finally:
            await client.aclose()

    asyncio.run(elect())
    result = run_cli(workdir, ["services", "leaders", "--json"], base_env(workdir, backend=url))
    assert result.returncode == 0, result.stderr
    rows = {row["lease"]: row for row in json.loads(result.stdout)}
    assert rows["scheduler"]["holder"] == "node-a:321:qwerty" and rows["scheduler"]["pid"] == 321
    assert rows["maintenance"]["holder"] is None and "service:csv-import" in rows
    table = run_cli(workdir, ["services", "leaders"], base_env(workdir, backend=url, COLUMNS="200"))
    assert "node-a:321:qwerty" in table.stdout and "(nobody)" in table.stdout
