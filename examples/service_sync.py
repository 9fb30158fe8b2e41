"""Seed 003 — a daily service sync: a cron schedule at 06:30 UTC starts a workflow that fans out
one sync job per active hosting service, then writes one summary report once every sync has
finished or failed (a fan-in with the `continue` policy: a failed service is in the report, not
a reason to skip it). Workers pull each service's status records from an external API into a
log table; admins start the same run by hand, or sync services at once without a report,
through JWT-protected routes. Each run is a workflow: `taskyard workflows`, the dashboard.

    taskyard --app examples.service_sync:app run                         # all in one process
    taskyard --app examples.service_sync:app run --only api,scheduler,maintenance
    taskyard --app examples.service_sync:app worker --queues sync        # the seed's worker
    taskyard token create --role admin --ttl 1h                          # a JWT for the routes
    curl -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:5050/api/v1/sync/all

Routes (under /api/v1, taskyard's auth; POST needs the admin role): `POST /sync/run` (the
workflow now: every active service, then the report), `POST /sync/all` (one job per active
service, spread over 30 s, no report), `POST /sync/service/{id}`, `GET /sync/status` (queue
counts), `GET /sync/jobs/{job_id}`; a run's steps are at `GET /workflows/{id}`.
The seed's `REDIS_HOST`, `REDIS_PORT` and `REDIS_PASSWORD` (optional) make Redis the backend,
as `redis://:PASSWORD@HOST:PORT/0`, when `TASKYARD_BACKEND` is not set (it wins when it is), so
a team's existing `.env` keeps working. `SYNC_CRON=*/5 * * * *` is the seed's development timetable; `SERVICE_SYNC_DB` the database
(default `service_sync.db`, filled with three demo services on first use; a `mysql://` URL keeps
the services and their logs in MySQL, as the seed does, and so does a `mysql://` `TASKYARD_BACKEND`
when `SERVICE_SYNC_DB` is not set: the sync records then live beside taskyard's tables). The seed's cleanup
(keep 10 completed, 5 failed) is the sync queue's own retention, declared with the queue
(`RETENTION`; `[maintenance.retention.queues.sync.completed] keep_last = ...` in `taskyard.toml`
overrides it); other queues keep `[maintenance.retention]`'s rules.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import BaseModel

from taskyard import JobContext, Retry, Taskyard, exponential
from taskyard.clock import Clock
from taskyard.errors import NotFoundError
from taskyard.http.api import app_router

QUEUE = "sync"
#: The seed's cleanup: keep the last 10 completed and the last 5 failed sync jobs.
RETENTION = {"completed": {"keep_last": 10}, "failed": {"keep_last": 5}}
#: Jobs of the sync queue running at once across every worker (the seed's "concurrency: 5").
CONCURRENCY = 5
#: Largest random delay before one service's sync starts, so the API is not hit all at once.
SPREAD_SECONDS = 30.0


class ServiceGone(Exception):
    """The service does not exist or is inactive: retrying cannot help."""


class StatusApi(Protocol):
    """The external status API: a service's status records (each with a unique `id`)."""

    async def fetch(self, service: dict[str, Any]) -> list[dict[str, Any]]: ...


class DemoStatusApi:
    """Stands in for the provider's API: one record per service and hour, stable ids."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def fetch(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        now = self.clock.now().replace(minute=0, second=0, microsecond=0)
        hours = [now.replace(hour=h) for h in range(now.hour + 1)]
        return [
            {
                "id": f"{service['id']}-{h:%Y%m%d%H}",
                "at": h.isoformat(),
                "status": "up" if hashlib.sha1(f"{service['id']}{h}".encode()).digest()[0] > 20 else "down",
            }
            for h in hours
        ]


class SyncDatabase:
    """The application's own database (the seed's MySQL): hosting services and their logs.

    A SQLite file, so a worker process and an API process on one host share it; every method is
    blocking (call it with `asyncio.to_thread`).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._ready = False  # the file is created on first use, not when the app is imported

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10)) as conn, conn:
            if not self._ready:
                conn.executescript(
                    """
                    CREATE TABLE IF NOT EXISTS services (
                        id INTEGER PRIMARY KEY, name TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1);
                    CREATE TABLE IF NOT EXISTS service_logs (
                        service_id INTEGER NOT NULL, record_id TEXT NOT NULL, at TEXT, status TEXT,
                        PRIMARY KEY (service_id, record_id));
                    """
                )
                self._ready = True
            yield conn

    def add_service(self, name: str, *, active: bool = True) -> int:
        """Insert a hosting service; returns its id."""
        with self._connect() as db:
            cur = db.execute("INSERT INTO services (name, active) VALUES (?, ?)", (name, int(active)))
            return int(cur.lastrowid or 0)

    def seed_demo(self) -> None:
        """Three services (one inactive) when the table is empty."""
        with self._connect() as db:
            if db.execute("SELECT count(*) FROM services").fetchone()[0]:
                return
        for name, active in (("shared-eu-1", True), ("shared-us-1", True), ("legacy-box", False)):
            self.add_service(name, active=active)

    def active_services(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT id, name FROM services WHERE active = 1 ORDER BY id").fetchall()
        return [{"id": r[0], "name": r[1]} for r in rows]

    def service(self, service_id: int) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT id, name, active FROM services WHERE id = ?", (service_id,)).fetchone()
        return {"id": row[0], "name": row[1], "active": bool(row[2])} if row else None

    def insert_logs(self, service_id: int, records: list[dict[str, Any]]) -> int:
        """Insert the records not stored yet (a re-run inserts nothing twice); returns how many."""
        with self._connect() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO service_logs (service_id, record_id, at, status) VALUES (?, ?, ?, ?)",
                [(service_id, r["id"], r.get("at"), r.get("status")) for r in records],
            )
            return db.total_changes - before

    def log_count(self, service_id: int) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM service_logs WHERE service_id = ?", (service_id,)).fetchone()[0])


class MysqlSyncDatabase:
    """The seed's own MySQL (`mysql://user:pass@host:port/database`): the same tables and
    methods as `SyncDatabase`, each method blocking (call it with `asyncio.to_thread`)."""

    def __init__(self, url: str) -> None:
        from taskyard.backends.mysql.connection import MysqlUrl

        self.config = MysqlUrl.parse(url)
        self._ready = False

    def _run(self, sql: str, args: Any = (), *, many: bool = False) -> tuple[int, list[Any]]:
        """One statement on a connection of its own (in the calling thread's own loop)."""
        import asyncmy

        async def run() -> tuple[int, list[Any]]:
            conn = await asyncmy.connect(**self.config.connect_kwargs())
            try:
                async with conn.cursor() as cur:
                    if not self._ready:
                        await cur.execute(
                            "CREATE TABLE IF NOT EXISTS services (id INT AUTO_INCREMENT PRIMARY KEY, "
                            "name VARCHAR(255) NOT NULL, active BOOLEAN NOT NULL DEFAULT TRUE)")
                        await cur.execute(
                            "CREATE TABLE IF NOT EXISTS service_logs (service_id INT NOT NULL, "
                            "record_id VARCHAR(255) NOT NULL, at VARCHAR(64), status VARCHAR(32), "
                            "PRIMARY KEY (service_id, record_id))")
                        self._ready = True
                    count = await (cur.executemany(sql, args) if many else cur.execute(sql, args))
                    return int(count or 0) if not many else int(cur.rowcount), list(await cur.fetchall() or [])
            finally:
                conn.close()

        return asyncio.run(run())

    def add_service(self, name: str, *, active: bool = True) -> int:
        self._run("INSERT INTO services (name, active) VALUES (%s, %s)", (name, active))
        return int(self._run("SELECT MAX(id) FROM services")[1][0][0])

    def seed_demo(self) -> None:
        if self._run("SELECT COUNT(*) FROM services")[1][0][0]:
            return
        for name, active in (("shared-eu-1", True), ("shared-us-1", True), ("legacy-box", False)):
            self.add_service(name, active=active)

    def active_services(self) -> list[dict[str, Any]]:
        rows = self._run("SELECT id, name FROM services WHERE active ORDER BY id")[1]
        return [{"id": r[0], "name": r[1]} for r in rows]

    def service(self, service_id: int) -> dict[str, Any] | None:
        rows = self._run("SELECT id, name, active FROM services WHERE id = %s", (service_id,))[1]
        return {"id": rows[0][0], "name": rows[0][1], "active": bool(rows[0][2])} if rows else None

    def insert_logs(self, service_id: int, records: list[dict[str, Any]]) -> int:
        if not records:
            return 0
        inserted, _ = self._run(
            "INSERT IGNORE INTO service_logs (service_id, record_id, at, status) VALUES (%s, %s, %s, %s)",
            [(service_id, r["id"], r.get("at"), r.get("status")) for r in records], many=True)
        return inserted

    def log_count(self, service_id: int) -> int:
        rows = self._run("SELECT COUNT(*) FROM service_logs WHERE service_id = %s", (service_id,))[1]
        return int(rows[0][0])


def sync_database(env: Mapping[str, str]) -> SyncDatabase | MysqlSyncDatabase:
    """The seed's database: `SERVICE_SYNC_DB` (a SQLite path or a `mysql://` URL), else the
    MySQL database of a `mysql://` `TASKYARD_BACKEND`, else `service_sync.db`."""
    target = env.get("SERVICE_SYNC_DB") or ""
    if not target and env.get("TASKYARD_BACKEND", "").startswith("mysql://"):
        target = env["TASKYARD_BACKEND"]
    if target.startswith("mysql://"):
        return MysqlSyncDatabase(target)
    return SyncDatabase(target or "service_sync.db")


def backend_from_seed_env(env: Mapping[str, str]) -> str | None:
    """The backend URL the seed's `REDIS_*` variables name, unless `TASKYARD_BACKEND` is set."""
    host = env.get("REDIS_HOST", "").strip()
    if env.get("TASKYARD_BACKEND") or not host:
        return None
    port = env.get("REDIS_PORT", "").strip() or "6379"
    if not port.isdigit():
        raise ValueError(f"REDIS_PORT={port!r} is not a port number")
    password = env.get("REDIS_PASSWORD", "")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"


class SyncOne(BaseModel):
    """Payload of `services.sync`."""

    service_id: int


class SyncRunOut(BaseModel):
    """What `POST /sync/run` answers: the workflow started, and how many services it syncs."""

    workflow: str
    services: int


class SyncAllOut(BaseModel):
    """What `POST /sync/all` answers."""

    queued: int
    jobs: list[str]


def create_app(
    backend: str | None = None,
    *,
    clock: Clock | None = None,
    database: SyncDatabase | MysqlSyncDatabase | None = None,
    status_api: StatusApi | None = None,
    spread: float = SPREAD_SECONDS,
    cron: str | None = None,
    rng: random.Random | None = None,
) -> Taskyard:
    """The sync app: tasks, the 06:30 schedule, the queue settings and the admin routes."""
    app = Taskyard(backend if backend is not None else backend_from_seed_env(os.environ), clock=clock)
    db = database or sync_database(os.environ)
    api = status_api or DemoStatusApi(app.clock)
    rng = rng or random.Random()

    async def enqueue_all() -> list[str]:
        """One sync job per active service, each after a random delay up to `spread`."""
        await asyncio.to_thread(db.seed_demo)
        services = await asyncio.to_thread(db.active_services)
        jobs = await app.aenqueue_many(
            {"task": "services.sync", "payload": {"service_id": s["id"]}, "delay": rng.uniform(0, spread)}
            for s in services
        )
        return [job.id for job in jobs]

    @app.task("services.sync_all", queue=QUEUE)
    async def sync_all() -> dict[str, Any]:
        """A fan-out without a report (what `POST /sync/all` does, as a job)."""
        return {"queued": len(await enqueue_all())}

    # Unique per service: a sync already waiting or running absorbs a second request for it.
    @app.task(
        "services.sync", queue=QUEUE, timeout=120, unique="service:{service_id}",
        retry=Retry(attempts=4, backoff=exponential(2), non_retryable=(ServiceGone,)),
    )
    async def sync_service(req: SyncOne, ctx: JobContext) -> dict[str, Any]:
        """Fetch the service's status records and insert the new ones into its log."""
        service = await asyncio.to_thread(db.service, req.service_id)
        if service is None or not service["active"]:
            raise ServiceGone(f"service {req.service_id} is missing or inactive")
        records = await api.fetch(service)
        ctx.progress(50, f"{len(records)} record(s) fetched")
        inserted = await asyncio.to_thread(db.insert_logs, req.service_id, records)
        ctx.logger.info("service %s: %d new log record(s)", service["name"], inserted)
        return {"service": service["name"], "fetched": len(records), "inserted": inserted}

    @app.task("services.sync_report", queue=QUEUE)
    async def sync_report(payload: None, ctx: JobContext) -> dict[str, Any]:
        """The fan-in: one summary of the run, once every sync has completed or failed."""
        synced = ctx.results(sync_service)  # the completed syncs, in service order
        failed = [
            {"service_id": j.payload["service_id"], "error": j.errors[-1].message if j.errors else j.status.value}
            for j in ctx.parent_jobs("sync") if j.status.value != "completed"
        ]
        report = {
            "synced": [r["service"] for r in synced],
            "inserted": sum(r["inserted"] for r in synced),
            "failed": failed,
        }
        ctx.logger.info("sync run %s: %d synced, %d failed", ctx.workflow_id, len(synced), len(failed))
        return report

    async def start_run() -> tuple[str, int]:
        """The sync workflow: every active service (fan-out), then the report (fan-in)."""
        await asyncio.to_thread(db.seed_demo)
        services = await asyncio.to_thread(db.active_services)
        wf = app.workflow("service-sync")
        syncs = wf.map(sync_service, [SyncOne(service_id=s["id"]) for s in services], name="sync")
        wf.step(sync_report, None, name="report", after={syncs: "continue"})
        return (await wf.aenqueue()).id, len(services)

    @app.task("services.sync_run", queue=QUEUE)
    async def sync_run() -> dict[str, Any]:
        """The scheduled run: starts the sync workflow (the queue's concurrency spreads the
        load on the status API, where `sync_all` spreads it over time)."""
        workflow_id, services = await start_run()
        return {"workflow": workflow_id, "services": services}

    app.schedule(
        "daily-service-sync", task="services.sync_run", payload={},
        cron=cron or os.environ.get("SYNC_CRON", "30 6 * * *"), tz="UTC",
    )

    # The seed's "concurrency: 5", across every worker; stored when a task server starts.
    # The seed's cleanup: the last 10 completed and 5 failed sync jobs, of this queue only.
    app.queue(QUEUE, concurrency=CONCURRENCY, retention=RETENTION)

    routes = app_router(app, prefix="/sync", tags=["sync"])

    @routes.post("/run", status_code=202, response_model=SyncRunOut)
    async def post_sync_run() -> SyncRunOut:
        """Start the sync workflow now (admin): every active service, then the report."""
        workflow_id, services = await start_run()
        return SyncRunOut(workflow=workflow_id, services=services)

    @routes.post("/all", status_code=202, response_model=SyncAllOut)
    async def post_sync_all() -> SyncAllOut:
        """Sync every active service now (admin)."""
        jobs = await enqueue_all()
        return SyncAllOut(queued=len(jobs), jobs=jobs)

    @routes.post("/service/{service_id}", status_code=202)
    async def post_sync_service(service_id: int) -> dict[str, Any]:
        """Sync one service now (admin); 404 when it does not exist."""
        if await asyncio.to_thread(db.service, service_id) is None:
            raise NotFoundError(f"no service {service_id}")
        job = await app.aenqueue("services.sync", {"service_id": service_id})
        return {"job": job.id, "status": job.status.value}

    @routes.get("/status")
    async def get_status() -> dict[str, int]:
        """Waiting, delayed, active, completed and failed sync jobs."""
        counts = (await app.acounts()).get(QUEUE, {})
        return {
            "waiting": counts.get("pending", 0), "delayed": counts.get("scheduled", 0),
            "active": counts.get("running", 0), "completed": counts.get("completed", 0),
            "failed": counts.get("failed", 0),
        }

    @routes.get("/jobs/{job_id}")
    async def get_job(job_id: str) -> dict[str, Any]:
        """One sync job's status, attempts, result and last error."""
        job = await app.aget_job(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return {
            "id": job.id, "task": job.task, "status": job.status.value, "attempt": job.attempt,
            "max_attempts": job.max_attempts, "result": job.result,
            "error": job.errors[-1].message if job.errors else None,
            "finished_at": job.finished_at.isoformat() if isinstance(job.finished_at, datetime) else None,
        }

    return app


app = create_app()
