"""A real task server in this process (memory backend, real uvicorn on a free port): health,
readiness, the services document, pause/resume, and /metrics parsed by Prometheus' parser."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskyard import PeriodicService, PeriodicServiceConfig, Taskyard
from taskyard.config import load_settings
from taskyard.core.job import JobStatus
from taskyard.server import TaskServer
from taskyard.services.base import Service, ServiceStatus
from taskyard.services.testsignals import TestSignals
from tests.support.waiting import wait_until as until


class Counter(PeriodicService):
    """Ticks quickly; every second run fails (so the metrics have both kinds)."""

    async def execute(self) -> None:
        if self.metrics_data.runs % 2 == 1:
            raise ValueError("odd run")


class Broken(Service):
    """A non-critical service whose main loop dies at once."""

    async def run(self) -> None:
        raise RuntimeError("broken on purpose")


def counter(app: Taskyard) -> Counter:
    service = Counter(config=PeriodicServiceConfig(interval=0.02))
    service.signals = TestSignals()
    return service


def make_app() -> Taskyard:
    app = Taskyard("memory://")

    @app.task("math.add", queue="math")
    async def add(payload: dict) -> int:
        return int(payload["a"]) + int(payload["b"])

    @app.task("always.fail")
    async def fail(payload: dict) -> None:
        raise RuntimeError("nope")

    app.service("counter", name="Counter")(counter)
    app.service("broken")(Broken)
    return app


@pytest.fixture
async def server() -> AsyncIterator[TaskServer]:
    settings = load_settings(
        http={"port": 0},
        worker={"poll_interval": 0.05},
        maintenance={"promote_interval": 0.05},
        manager={"restart_initial_delay": 0.01},
    )
    srv = TaskServer(make_app(), settings)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def http(server: TaskServer) -> AsyncIterator[httpx.AsyncClient]:
    assert server.http is not None
    async with httpx.AsyncClient(base_url=server.http.url, timeout=10) as client:
        yield client


async def test_liveness_and_services_document(server: TaskServer, http: httpx.AsyncClient) -> None:
    await until(lambda: server.manager.get("broken").service.status is ServiceStatus.ERROR)
    live = await http.get("/health")  # still 200: the process serves; it names what failed
    assert live.status_code == 200
    assert live.json() | {"timestamp": None} == {
        "status": "degraded", "timestamp": None, "services_in_error": ["broken"]
    }
    doc = (await http.get("/health/services")).json()
    assert set(doc) >= {"healthy", "status", "timestamp", "totals", "services"}
    assert doc["status"] == "degraded" and doc["healthy"] is False
    assert doc["totals"]["error"] == 1
    assert doc["totals"]["running"] == doc["totals"]["total"] - 1
    broken = doc["services"]["broken"]
    assert broken["status"] == "ERROR" and broken["healthy"] is False
    assert broken["error"] == "RuntimeError: broken on purpose" and broken["restarts"] == 0
    for service_id in ("http", "leader:maintenance", "worker", "rescuer", "counter"):
        assert doc["services"][service_id]["healthy"] is True, service_id
    await until(lambda: server.manager.get("counter").service.metrics_data.successes > 0)
    await until(lambda: all(e.is_leader for e in server.leaders.values()))
    doc = (await http.get("/health/services")).json()
    assert doc["services"]["counter"]["last_success"] is not None
    # Each leader-only duty shows the lease it competes for and whether this process leads it.
    services = doc["services"]
    assert services["leader:scheduler"]["lease"]["name"] == "scheduler"
    assert services["leader:maintenance"]["lease"]["leader"] is True
    assert services["scheduler"]["lease"] == {"name": "scheduler", "leader": True}
    assert services["rescuer"]["lease"] == {"name": "maintenance", "leader": True}
    assert services["worker"]["lease"] is None


async def test_ready_reports_degraded_and_critical_services(server: TaskServer, http: httpx.AsyncClient) -> None:
    await until(lambda: server.manager.get("broken").service.status is ServiceStatus.ERROR)
    response = await http.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "reasons": [], "backend": "ok", "degraded": ["broken"]}
    # A critical service stopped (by hand: nothing restarts it) makes the process unready.
    await server.manager.stop("worker")
    response = await http.get("/ready")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["critical service 'worker' is STOPPED"]
    assert (await http.get("/health/services")).status_code == 503
    await server.manager.start("worker")
    assert (await http.get("/ready")).status_code == 200
    server.context.draining = True  # type: ignore[union-attr]
    response = await http.get("/ready")
    assert response.status_code == 503 and "shutting down" in response.json()["reasons"]


async def test_pause_and_resume_of_worker_and_periodic_service(server: TaskServer, http: httpx.AsyncClient) -> None:
    app = server.app
    worker, counter = server.manager.get("worker").service, server.manager.get("counter").service
    promoter = server.manager.get("promoter").service  # not paused: the time it takes
    worker.signals, promoter.signals = TestSignals(), TestSignals()
    server.manager.pause("worker")
    server.manager.pause("counter")
    doc = (await http.get("/health/services")).json()
    assert doc["services"]["worker"]["status"] == "PAUSED"
    assert doc["services"]["counter"]["status"] == "PAUSED"
    assert doc["totals"]["paused"] == 2
    await until(lambda: worker.signals.count("held") and counter.signals.count("held"), what="both to hold")
    runs = counter.metrics_data.runs
    job = await app.aenqueue("math.add", {"a": 1, "b": 2})
    # While paused, neither runs: the job stays pending and the counter does not tick, for as
    # long as the promoter (every 0.05 s) takes to tick six times.
    ticks = promoter.signals.count("tick")
    await until(lambda: promoter.signals.count("tick") >= ticks + 6, what="six ticks of the promoter")
    assert (await app.aget_job(job.id)).status is JobStatus.PENDING  # type: ignore[union-attr]
    assert counter.metrics_data.runs == runs
    server.manager.resume("worker")
    server.manager.resume("counter")
    done = await app.await_job(job.id, timeout=10)
    assert done.status is JobStatus.COMPLETED and done.result == 3
    await until(lambda: counter.metrics_data.runs > runs)
    doc = (await http.get("/health/services")).json()
    assert doc["services"]["worker"]["status"] == doc["services"]["counter"]["status"] == "RUNNING"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client itself."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_parse_and_count_jobs_and_runs(server: TaskServer, http: httpx.AsyncClient) -> None:
    app = server.app
    ok = [await app.aenqueue("math.add", {"a": i, "b": 1}) for i in range(3)]
    bad = await app.aenqueue("always.fail", {})
    for job in [*ok, bad]:
        await app.await_job(job.id, timeout=10)
    await until(lambda: server.manager.get("broken").service.status is ServiceStatus.ERROR)
    response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)
    math = (("queue", "math"), ("task", "math.add"))
    failing = (("queue", "default"), ("task", "always.fail"))
    assert values[("taskyard_jobs_enqueued_total", math)] == 3
    assert values[("taskyard_jobs_completed_total", math)] == 3
    assert values[("taskyard_jobs_failed_total", failing)] == 1
    assert values[("taskyard_job_duration_seconds_count", math)] == 3
    assert values[("taskyard_queue_jobs", (("queue", "math"), ("status", "completed")))] == 3
    assert values[("taskyard_queue_jobs", (("queue", "default"), ("status", "failed")))] == 1
    assert values[("taskyard_workers", ())] == 1
    assert values[("taskyard_worker_lost_threads", ())] == 0
    assert values[("taskyard_backend_up", ())] == 1
    assert values[("taskyard_service_status", (("service", "broken"), ("status", "ERROR")))] == 1
    assert values[("taskyard_service_status", (("service", "worker"), ("status", "RUNNING")))] == 1
    # Service run counters agree with the service's own metrics at the moment of a scrape.
    counter = server.manager.get("counter").service
    server.manager.pause("counter")
    await until(lambda: counter.signals.count("held"), what="the paused counter to hold")  # no run under way
    values = samples((await http.get("/metrics")).text)
    m = counter.metrics_data
    assert m.runs >= 2
    assert values[("taskyard_service_runs_total", (("outcome", "success"), ("service", "counter")))] == m.successes
    assert values[("taskyard_service_runs_total", (("outcome", "failure"), ("service", "counter")))] == m.failures


async def test_oversized_bodies_are_refused(server: TaskServer, http: httpx.AsyncClient) -> None:
    limit = server.settings.http.max_body_bytes
    response = await http.post("/health", content=b"x" * (limit + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_lost_threads_show_in_health_metrics_and_readiness() -> None:
    release = threading.Event()
    app = Taskyard("memory://")

    @app.task("hang", timeout=0.1)
    def hang() -> None:
        release.wait()  # blocked in C: the thread cannot be stopped

    settings = load_settings(
        http={"port": 0}, worker={"poll_interval": 0.05, "stop_grace": 0.1, "max_lost_threads": 2},
    )
    srv = TaskServer(app, settings, only="worker,api")
    await srv.start()
    assert srv.http is not None and srv.worker is not None
    try:
        async with httpx.AsyncClient(base_url=srv.http.url, timeout=10) as http:
            first = await app.aenqueue("hang")
            await until(lambda: len(srv.worker.lost_threads) == 1, timeout=10, what="a lost thread")
            doc = (await http.get("/health/services")).json()
            details = doc["services"]["worker"]["details"]
            assert details["lost_threads"] == 1 and details["max_lost_threads"] == 2
            assert [(x["job_id"], x["task"]) for x in details["lost"]] == [(first.id, "hang")]
            assert doc["services"]["worker"]["healthy"] and doc["status"] == "healthy"
            assert (await http.get("/ready")).status_code == 200
            assert samples((await http.get("/metrics")).text)[("taskyard_worker_lost_threads", ())] == 1
            listed = (await http.get("/health")).json()
            assert (listed["status"], listed["lost_threads"]) == ("ok", 1)

            await app.aenqueue("hang")
            await until(lambda: srv.worker.recycle_reason is not None, timeout=10, what="the recycle")
            doc = (await http.get("/health/services")).json()
            worker = doc["services"]["worker"]
            assert doc["status"] == "degraded" and not worker["healthy"]
            assert "max_lost_threads=2" in worker["details"]["recycling"]
            ready = await http.get("/ready")
            assert ready.status_code == 503
            assert any("lost handler thread" in r for r in ready.json()["reasons"])
            assert (await http.get("/health")).json()["status"] == "degraded"
    finally:
        release.set()
        await srv.stop()
