"""Seed 000 — scheduler services built for horizontal scaling: CSV import, import processing,
session processing and batch processing, each a periodic service with status, metrics,
pause/resume and its own options, under one manager or one process each.

    taskyard --app examples.scheduler_fleet:app run                        # single process
    taskyard --app examples.scheduler_fleet:app run --service csv-import   # standalone runner
    taskyard --app examples.scheduler_fleet:app services list              # the runner's --list
    curl http://127.0.0.1:5050/health/services          # the seed's health document
    curl -X POST -H "Authorization: Bearer $TOKEN" \\
         http://127.0.0.1:5050/api/v1/services/csv-import/pause            # .../resume, .../run

The stages share a SQLite file (`PIPELINE_DB`, default `pipeline.db`), so each may run in its
own process or container, and in several replicas: a CSV file is claimed by an atomic rename,
each database step is one write transaction, and every step is idempotent. The seed's variables map onto taskyard settings (seconds, not ms):
`CSV_IMPORT_INTERVAL` → `TASKYARD_SERVICES__CSV_IMPORT__INTERVAL`, `CSV_IMPORT_BATCH_SIZE` →
`...__BATCHSIZE`, `CSV_IMPORT_MAX_CONCURRENT` → `...__MAXCONCURRENTIMPORTS`, `CSV_IMPORT_TIMEOUT`
→ `...__TIMEOUT`; or in `taskyard.toml`:

    [services.csv-import]
    interval = "*/10 * * * *"
    batchSize = 10
    maxConcurrentImports = 5
    timeout = 300
    inbox = "imports/inbox"      # one folder per company: imports/inbox/<company>/*.csv

`SCHEDULER_AUTO_RESTART` is `critical=True` (restarts with backoff, `[manager]` settings);
`SCHEDULER_ENABLED=false` is `--only worker,api`.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taskyard import PeriodicService, PeriodicServiceConfig, Retry, Taskyard, exponential
from taskyard.clock import Clock

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

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline, PeriodicServiceConfig(
            interval="*/10 * * * *", timeout=300.0, batch_size=10, max_concurrency=5))
        self.imported = 0  # rows, for the logs and tests

    async def execute(self) -> None:
        inbox = Path(self.options.get("inbox", "imports/inbox"))
        files = sorted(inbox.glob("*/*.csv"))[: self.config.batch_size]
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

    def _record_error(self, company: str, file: str, error: str) -> None:
        with self.pipeline.connect() as db:
            db.execute("INSERT INTO import_errors VALUES (?, ?, ?)", (company, file, error))


def _move(path: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path.rename(folder / path.name)


class ImportProcessingService(PipelineService):
    """Turns imported rows into sessions."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline, PeriodicServiceConfig(interval="*/2 * * * *", timeout=120.0, batch_size=500))

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

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline, PeriodicServiceConfig(
            interval="*/5 * * * *", timeout=300.0, batch_size=50, max_concurrency=4))

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

    def __init__(self, pipeline: Pipeline, app: Taskyard) -> None:
        super().__init__(pipeline, PeriodicServiceConfig(interval="*/5 * * * *", timeout=120.0, batch_size=100))
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


def create_app(backend: str | None = None, *, clock: Clock | None = None, pipeline: Pipeline | None = None) -> Taskyard:
    """The four stages as services (CSV import critical: restarted when it fails) and the
    batch submission task."""
    app = Taskyard(backend, clock=clock)
    db = pipeline or Pipeline(os.environ.get("PIPELINE_DB", "pipeline.db"))

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

    app.service("csv-import", name="CSV Import Scheduler", critical=True)(lambda: CsvImportService(db))
    app.service("import-processing", name="Import Processing Scheduler")(lambda: ImportProcessingService(db))
    app.service("session-processing", name="Session Processing Scheduler")(lambda: SessionProcessingService(db))
    app.service("batch-processing", name="Batch Processing Scheduler")(lambda: BatchProcessingService(db, app))
    return app


app = create_app()
