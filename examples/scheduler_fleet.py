"""Seed 000 — scheduler services built for horizontal scaling: CSV import, import processing,
session processing and batch processing, each a periodic service with status, metrics,
pause/resume and its own options, under one manager or one process each.

    taskyard --app examples.scheduler_fleet:app run                        # single process
    taskyard --app examples.scheduler_fleet:app run --service csv-import   # standalone runner
    taskyard --app examples.scheduler_fleet:app services list              # the runner's --list
    curl http://127.0.0.1:5050/api/admin/schedulers/health                 # the seed's health document
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:5050/api/admin/schedulers
    curl -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
         -d '{"action": "trigger", "schedulerId": "csv-import"}' http://127.0.0.1:5050/api/admin/schedulers

The seed's routes: `GET /api/admin/schedulers/health` (no credentials: the probes' path; 503 when
a critical scheduler is down) counts this app's four schedulers only, `GET /api/admin/schedulers`
lists them, `POST /api/admin/schedulers` acts on one (`action`: trigger, pause, resume, start,
stop; admin role).

The stages share a SQLite file (`PIPELINE_DB`, default `pipeline.db`), so each may run in its
own process or container, and in several replicas: a CSV file is claimed by an atomic rename,
each database step is one write transaction, and every step is idempotent.

The seed's environment variables are read as the services' defaults (milliseconds become
seconds); `[services.<id>]` in `taskyard.toml` or `TASKYARD_SERVICES__<ID>__<OPTION>` win over them:

    CSV_IMPORT_INTERVAL, _BATCH_SIZE, _MAX_CONCURRENT, _TIMEOUT (ms)   csv-import
    IMPORT_PROCESSING_INTERVAL, IMPORT_PROCESSING_TIMEOUT (ms)         import-processing
    SESSION_PROCESSING_INTERVAL, SESSION_PROCESSING_BATCH_SIZE         session-processing
    BATCH_PROCESSING_INTERVAL                                          batch-processing
    SCHEDULER_ENABLED=false     the schedulers do not start in this process (the app container);
                                `run --service <id>` still runs the one it names
    SCHEDULER_AUTO_RESTART=false  CSV import is no longer critical (restarted on failure)
    REGION=us                   this instance's region; alone it means CSV_COMPANIES_FILTER=region:us
    CSV_COMPANIES_FILTER        `region:us[,eu]` or `company:acme[,globex]`: the companies whose
                                files this instance imports (regions from `imports/companies.csv`)
    SCHEDULER_INSTANCE_ID       this instance's name in `GET /api/admin/schedulers`

`BATCH_PROCESSING_CHECK_INTERVAL` has no counterpart: a batch is submitted by a job that retries
until it is accepted, so there is no status to poll. In `taskyard.toml`:

    [services.csv-import]
    interval = "*/10 * * * *"
    batchSize = 10
    maxConcurrentImports = 5
    timeout = 300
    inbox = "imports/inbox"      # one folder per company: imports/inbox/<company>/*.csv
    companies = "imports/companies.csv"   # company,region
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from taskyard import PeriodicService, PeriodicServiceConfig, Retry, Taskyard, exponential
from taskyard.clock import Clock
from taskyard.errors import NotFoundError
from taskyard.http.api import app_router, service_manager

log = logging.getLogger("examples.scheduler_fleet")

SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS imports (
    company TEXT NOT NULL, external_id TEXT NOT NULL, transcript TEXT NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (company, external_id));
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, company TEXT NOT NULL, external_id TEXT NOT NULL, transcript TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'NEW', category TEXT, batch_id INTEGER, UNIQUE (company, external_id));
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY, size INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'CREATED');
CREATE TABLE IF NOT EXISTS import_errors (company TEXT, file TEXT, error TEXT);
"""

#: The session processor's categories (an AI model in the seed; keywords here).
CATEGORIES = {"billing": ("refund", "invoice", "charge"), "account": ("password", "login", "locked")}


class Pipeline:
    """The stages' shared database. Blocking methods: call them with `asyncio.to_thread`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ready = False  # created on first use, not at import
        # Stages run in threads: two first connections must not both switch the journal mode
        # (the second one gets "database is locked" at once, busy timeout or not).
        self._schema_lock = threading.Lock()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one write transaction, committed on success."""
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as conn:
            if not self._ready:
                with self._schema_lock:
                    if not self._ready:
                        conn.executescript(SCHEMA)
                        self._ready = True
            # Take the write lock up front: two replicas of a stage never pick the same rows.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def add_imports(self, company: str, rows: list[dict[str, str]]) -> int:
        """Insert rows not seen before (duplicate detection by company + id); returns how many."""
        with self.connect() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO imports (company, external_id, transcript) VALUES (?, ?, ?)",
                [(company, r["id"], r.get("transcript", "")) for r in rows],
            )
            return db.total_changes - before

    def count(self, sql: str, *args: Any) -> int:
        with self.connect() as db:
            return int(db.execute(sql, args).fetchone()[0])

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.connect() as db:
            return db.execute(sql, args).fetchall()


@dataclass(frozen=True)
class SeedEnv:
    """The seed's environment variables, read once by `create_app`."""

    values: Mapping[str, str]

    def text(self, name: str, default: str) -> str:
        return self.values.get(name, "").strip() or default

    def number(self, name: str, default: int) -> int:
        raw = self.values.get(name, "").strip()
        try:
            return int(raw) if raw else default
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a whole number") from None

    def seconds_from_ms(self, name: str, default: float) -> float:
        return self.number(name, int(default * 1000)) / 1000

    def flag(self, name: str, default: bool) -> bool:
        raw = self.values.get(name, "").strip().lower()
        if not raw:
            return default
        if raw not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{name}={raw!r}: expected true or false")
        return raw in ("true", "1", "yes")

    def company_filter(self) -> tuple[str, frozenset[str]] | None:
        """`CSV_COMPANIES_FILTER` (`region:us,eu` or `company:acme`), else `REGION` alone."""
        raw = self.text("CSV_COMPANIES_FILTER", "")
        if not raw:
            region = self.text("REGION", "")
            return ("region", frozenset([region.lower()])) if region else None
        key, _, values = raw.partition(":")
        names = frozenset(v.strip().lower() for v in values.split(",") if v.strip())
        if key.strip() not in ("region", "company") or not names:
            raise ValueError(f"CSV_COMPANIES_FILTER={raw!r}: expected region:<name>[,...] or company:<name>[,...]")
        return key.strip(), names


def _read_regions(path: Path) -> dict[str, str]:
    """company → region, from a `company,region` CSV (none when the file is missing)."""
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        return {r["company"].strip().lower(): r["region"].strip().lower() for r in csv.DictReader(handle)}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        rows = [dict(r) for r in csv.DictReader(handle)]
    if rows and "id" not in rows[0]:
        raise ValueError(f"{path.name}: no 'id' column")
    return rows


class PipelineService(PeriodicService):
    """A stage of the pipeline: a periodic service with the shared database."""

    def __init__(self, pipeline: Pipeline, config: PeriodicServiceConfig) -> None:
        super().__init__(config=config)
        self.pipeline = pipeline

    async def db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)


class CsvImportService(PipelineService):
    """Imports companies' CSV files: `batchSize` files a run, `maxConcurrentImports` at once.
    A bad file is set aside (with its error) without stopping the other companies' imports."""

    extra_options = ("inbox",)

    def __init__(self, pipeline: Pipeline, env: SeedEnv) -> None:
        super().__init__(pipeline, PeriodicServiceConfig(
            interval=env.text("CSV_IMPORT_INTERVAL", "*/10 * * * *"),
            timeout=env.seconds_from_ms("CSV_IMPORT_TIMEOUT", 300.0),
            batch_size=env.number("CSV_IMPORT_BATCH_SIZE", 10),
            max_concurrency=env.number("CSV_IMPORT_MAX_CONCURRENT", 5)))
        self.filter = env.company_filter()
        self.imported = 0  # rows, for the logs and tests

    async def execute(self) -> None:
        inbox = Path(self.options.get("inbox", "imports/inbox"))
        files = [f for f in sorted(inbox.glob("*/*.csv")) if await self._is_ours(f.parent.name)]
        files = files[: self.config.batch_size]
        limit = asyncio.Semaphore(self.config.max_concurrency)

        async def one(path: Path) -> int:
            company = path.parent.name
            claimed = inbox.parent / "processing" / company / path.name
            try:  # an atomic rename claims the file: a replica that loses the race skips it
                claimed.parent.mkdir(parents=True, exist_ok=True)
                path.rename(claimed)
            except FileNotFoundError:
                return 0
            async with limit:
                try:
                    rows = await asyncio.to_thread(_read_csv, claimed)
                    added = await self.db(self.pipeline.add_imports, company, rows)
                except (ValueError, KeyError, UnicodeDecodeError, csv.Error) as exc:
                    log.warning("import of %s failed: %s", path, exc, extra={"service_id": self.id})
                    await self.db(self._record_error, company, path.name, str(exc))
                    _move(claimed, inbox.parent / "failed" / company)
                    return 0
                _move(claimed, inbox.parent / "done" / company)
                return int(added)

        added = sum(await asyncio.gather(*(one(f) for f in files)))
        self.imported += added
        if files:
            log.info("imported %d new row(s) from %d file(s)", added, len(files), extra={"service_id": self.id})

    async def _is_ours(self, company: str) -> bool:
        """Whether this instance imports `company` (the company filter; no filter: every one).
        Another region's files stay in the inbox for that region's instance."""
        if self.filter is None:
            return True
        key, names = self.filter
        if key == "company":
            return company.lower() in names
        regions = await asyncio.to_thread(
            _read_regions, Path(self.options.get("companies", "imports/companies.csv")))
        return regions.get(company.lower()) in names

    def _record_error(self, company: str, file: str, error: str) -> None:
        with self.pipeline.connect() as db:
            db.execute("INSERT INTO import_errors VALUES (?, ?, ?)", (company, file, error))


def _move(path: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path.rename(folder / path.name)


class ImportProcessingService(PipelineService):
    """Turns imported rows into sessions."""

    def __init__(self, pipeline: Pipeline, env: SeedEnv) -> None:
        super().__init__(pipeline, PeriodicServiceConfig(
            interval=env.text("IMPORT_PROCESSING_INTERVAL", "*/2 * * * *"),
            timeout=env.seconds_from_ms("IMPORT_PROCESSING_TIMEOUT", 120.0), batch_size=500))

    async def execute(self) -> None:
        await self.db(self._process, self.config.batch_size)

    def _process(self, limit: int) -> None:
        with self.pipeline.connect() as db:
            rows = db.execute(
                "SELECT company, external_id, transcript FROM imports WHERE processed = 0 LIMIT ?", (limit,)
            ).fetchall()
            db.executemany(
                "INSERT OR IGNORE INTO sessions (company, external_id, transcript) VALUES (?, ?, ?)", rows
            )
            db.executemany("UPDATE imports SET processed = 1 WHERE company = ? AND external_id = ?",
                           [(r[0], r[1]) for r in rows])


class SessionProcessingService(PipelineService):
    """Categorises new sessions, `batchSize` a run, `maxConcurrency` analyses at once."""

    def __init__(self, pipeline: Pipeline, env: SeedEnv) -> None:
        super().__init__(pipeline, PeriodicServiceConfig(
            interval=env.text("SESSION_PROCESSING_INTERVAL", "*/5 * * * *"), timeout=300.0,
            batch_size=env.number("SESSION_PROCESSING_BATCH_SIZE", 50), max_concurrency=4))

    async def execute(self) -> None:
        sessions = await self.db(self.pipeline.rows, "SELECT id, transcript FROM sessions WHERE status = 'NEW' LIMIT ?",
                                 self.config.batch_size)
        limit = asyncio.Semaphore(self.config.max_concurrency)

        async def analyse(session_id: int, transcript: str) -> tuple[str, int]:
            async with limit:
                await asyncio.sleep(0)  # where the call to the model would wait
                text = transcript.lower()
                category = next((c for c, words in CATEGORIES.items() if any(w in text for w in words)), "general")
                return category, session_id

        results = await asyncio.gather(*(analyse(s, t) for s, t in sessions))
        await self.db(self._store, results)

    def _store(self, results: list[tuple[str, int]]) -> None:
        with self.pipeline.connect() as db:
            db.executemany("UPDATE sessions SET status = 'ANALYSED', category = ? WHERE id = ?", results)


class BatchSubmit(BaseModel):
    """Payload of `batches.submit`."""

    batch_id: int


class BatchProcessingService(PipelineService):
    """Groups analysed sessions into batches and enqueues one `batches.submit` job per batch
    (the seed's OpenAI Batch API call, with retries, on any worker)."""

    def __init__(self, pipeline: Pipeline, app: Taskyard, env: SeedEnv) -> None:
        super().__init__(pipeline, PeriodicServiceConfig(
            interval=env.text("BATCH_PROCESSING_INTERVAL", "*/5 * * * *"), timeout=120.0, batch_size=100))
        self.app = app

    async def execute(self) -> None:
        batch_id = await self.db(self._make_batch, self.config.batch_size)
        if batch_id is not None:
            await self.app.aenqueue("batches.submit", {"batch_id": batch_id})

    def _make_batch(self, size: int) -> int | None:
        with self.pipeline.connect() as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM sessions WHERE status = 'ANALYSED' AND batch_id IS NULL LIMIT ?", (size,))]
            if not ids:
                return None
            batch_id = int(db.execute("INSERT INTO batches (size) VALUES (?)", (len(ids),)).lastrowid or 0)
            db.executemany("UPDATE sessions SET batch_id = ? WHERE id = ?", [(batch_id, i) for i in ids])
            return batch_id


class SchedulerAction(BaseModel):
    """Body of `POST /api/admin/schedulers`."""

    action: Literal["trigger", "pause", "resume", "start", "stop"]
    scheduler_id: str = Field(alias="schedulerId")


def _own_entries(app: Taskyard, manager: Any) -> list[Any]:
    """The manager's entries of this app's services (none without a manager)."""
    if manager is None:
        return []
    return [e for e in manager.services() if e.id in app.service_specs]


def health_document(app: Taskyard, manager: Any) -> dict[str, Any]:
    """The seed's health document over this app's own services (not taskyard's worker,
    scheduler or HTTP service) that this process runs: `unhealthy` when a critical one is down, `degraded` when one is
    in ERROR or not running, else `healthy`."""
    entries = [e for e in _own_entries(app, manager) if e.auto_start or e.service.status.value != "STOPPED"]
    details = {
        e.id: {"status": e.service.status.value, "healthy": e.service.health()["healthy"],
               "lastSuccess": e.service.health()["last_success"]}
        for e in entries
    }
    running = sum(d["status"] == "RUNNING" for d in details.values())
    errors = sum(d["status"] == "ERROR" for d in details.values())
    if any(e.critical and not details[e.id]["healthy"] for e in entries):
        status = "unhealthy"
    elif errors or not all(d["healthy"] for d in details.values()):
        status = "degraded"
    else:
        status = "healthy"
    return {
        "healthy": status == "healthy",
        "status": status,
        "timestamp": app.clock.now().isoformat(),
        "schedulers": {"total": len(details), "running": running, "errors": errors},
        "details": details,
    }


def admin_routes(app: Taskyard, env: SeedEnv) -> None:
    """The seed's `/api/admin/schedulers` routes, at the seed's paths."""
    probes = app_router(app, root=True, public=True, prefix="/api/admin/schedulers", tags=["schedulers"])
    admin = app_router(app, root=True, prefix="/api/admin/schedulers", tags=["schedulers"])
    instance = env.text("SCHEDULER_INSTANCE_ID", "") or None
    region = env.text("REGION", "") or None

    @probes.get("/health")
    async def health(manager: Any = Depends(service_manager)) -> JSONResponse:
        """Overall scheduler health (no credentials: liveness and readiness probes)."""
        doc = health_document(app, manager)
        return JSONResponse(doc, status_code=503 if doc["status"] == "unhealthy" else 200)

    def listing(manager: Any) -> dict[str, Any]:
        rows = [
            {"id": e.id, "name": e.name, "status": e.service.status.value, "critical": e.critical,
             "interval": e.service.config.interval, "timeout": e.service.config.timeout,
             "batchSize": e.service.config.batch_size, "maxConcurrent": e.service.config.max_concurrency,
             "metrics": e.service.metrics()}
            for e in _own_entries(app, manager)
        ]
        return {"instance": instance, "region": region, "schedulers": rows}

    @admin.get("")
    async def list_schedulers(manager: Any = Depends(service_manager)) -> dict[str, Any]:
        """This instance's schedulers, their status, interval and metrics."""
        return listing(manager)

    @admin.post("")
    async def act(body: SchedulerAction, manager: Any = Depends(service_manager)) -> dict[str, Any]:
        """Trigger (run now), pause, resume, start or stop one scheduler (admin)."""
        if body.scheduler_id not in {e.id for e in _own_entries(app, manager)}:
            raise NotFoundError(f"no scheduler {body.scheduler_id!r} in this instance")
        if body.action == "trigger":
            await manager.run_now(body.scheduler_id)
        elif body.action in ("start", "stop"):
            await getattr(manager, body.action)(body.scheduler_id)
        else:
            getattr(manager, body.action)(body.scheduler_id)
        return {"ok": True, "action": body.action,
                "scheduler": next(r for r in listing(manager)["schedulers"] if r["id"] == body.scheduler_id)}


def create_app(backend: str | None = None, *, clock: Clock | None = None, pipeline: Pipeline | None = None,
               env: Mapping[str, str] | None = None) -> Taskyard:
    """The four stages as services (CSV import critical: restarted when it fails), the batch
    submission task and the seed's admin routes; `env` (default `os.environ`) holds the seed's
    variables."""
    app = Taskyard(backend, clock=clock)
    seed = SeedEnv(os.environ if env is None else env)
    db = pipeline or Pipeline(seed.text("PIPELINE_DB", "pipeline.db"))
    enabled = seed.flag("SCHEDULER_ENABLED", True)
    critical = seed.flag("SCHEDULER_AUTO_RESTART", True)

    @app.task("batches.submit", queue="batches", retry=Retry(attempts=5, backoff=exponential(30, max=600)),
              unique="batch:{batch_id}")
    async def submit_batch(req: BatchSubmit) -> dict[str, Any]:
        """Submit one batch (idempotent: a submitted batch is not sent again)."""
        def submit() -> int:
            with db.connect() as conn:
                changed = conn.execute("UPDATE batches SET status = 'SUBMITTED' WHERE id = ? AND status = 'CREATED'",
                                       (req.batch_id,)).rowcount
                conn.execute("UPDATE sessions SET status = 'DONE' WHERE batch_id = ?", (req.batch_id,))
                return int(changed)
        return {"batch": req.batch_id, "submitted": bool(await asyncio.to_thread(submit))}

    app.service("csv-import", name="CSV Import Scheduler", critical=critical, auto_start=enabled)(
        lambda: CsvImportService(db, seed))
    app.service("import-processing", name="Import Processing Scheduler", auto_start=enabled)(
        lambda: ImportProcessingService(db, seed))
    app.service("session-processing", name="Session Processing Scheduler", auto_start=enabled)(
        lambda: SessionProcessingService(db, seed))
    app.service("batch-processing", name="Batch Processing Scheduler", auto_start=enabled)(
        lambda: BatchProcessingService(db, app, seed))
    admin_routes(app, seed)
    return app


app = create_app()
