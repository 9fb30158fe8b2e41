"""A small task server (seeds 000/001; `scheduler_fleet.py` and `task_server.py` are the full
ones): a CSV import service and a session report as periodic services, their options from
settings, one job per imported row.

    taskyard --app examples.services_app:app run                       # everything in one process
    taskyard --app examples.services_app:app run --service csv-import  # the importer alone
    taskyard --app examples.services_app:app services list

Options (taskyard.toml, or TASKYARD_SERVICES__CSV_IMPORT__BATCHSIZE=20 ...):

    [services.csv-import]
    interval = "*/10 * * * *"   # cron (UTC) or seconds
    batchSize = 10              # files per run
    maxConcurrentImports = 5    # files read at once
    timeout = 300               # seconds per run
    inbox = "imports/inbox"     # an option of the service's own (its `extra_options`): self.options
"""

from __future__ import annotations

import asyncio
import csv
import logging
from pathlib import Path

from pydantic import BaseModel

from taskyard import PeriodicService, PeriodicServiceConfig, Taskyard

app = Taskyard()  # TASKYARD_BACKEND, else sqlite:///taskyard.db
log = logging.getLogger("examples.services_app")


class SessionRow(BaseModel):
    source: str
    session_id: str
    data: dict[str, str]


@app.task("sessions.process", queue="sessions", unique="{source}:{session_id}")
async def process_session(row: SessionRow) -> dict:
    """Analyse one imported session (here: count its fields). Unique per source and session,
    so importing the same file twice creates no duplicate jobs."""
    return {"session": row.session_id, "fields": len(row.data)}


@app.service("csv-import", name="CSV import", critical=True)
class CsvImportService(PeriodicService):
    """Moves CSV files from the inbox to `done/`, enqueuing one job per row."""

    extra_options = ("inbox",)  # read from self.options; any other unknown option fails the start

    def __init__(self, app: Taskyard) -> None:
        super().__init__(
            config=PeriodicServiceConfig(interval="*/10 * * * *", timeout=300.0, batch_size=10, max_concurrency=5)
        )
        self.app = app

    @property
    def inbox(self) -> Path:
        return Path(self.options.get("inbox", "imports/inbox"))

    async def execute(self) -> None:
        files = sorted(self.inbox.glob("*.csv"))[: self.config.batch_size]
        if not files:
            return
        limit = asyncio.Semaphore(self.config.max_concurrency)

        async def one(path: Path) -> int:
            async with limit:
                rows = await asyncio.to_thread(_read_rows, path)
                await self.app.aenqueue_many(
                    ("sessions.process", {"source": path.stem, "session_id": r.get("id", str(i)), "data": r})
                    for i, r in enumerate(rows)
                )
                done = path.parent.parent / "done"
                done.mkdir(parents=True, exist_ok=True)
                path.rename(done / path.name)
                return len(rows)

        counts = await asyncio.gather(*(one(f) for f in files))
        log.info("imported %d row(s) from %d file(s)", sum(counts), len(files), extra={"service_id": self.id})


@app.service("session-report", name="Session report")
def session_report(app: Taskyard) -> PeriodicService:
    """A factory-built service: logs how many sessions wait, every minute."""

    class SessionReport(PeriodicService):
        async def execute(self) -> None:
            counts = (await app.acounts()).get("sessions", {})
            log.info("sessions: %d pending, %d done", counts.get("pending", 0), counts.get("completed", 0))

    return SessionReport(config=PeriodicServiceConfig(interval=60.0))


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return [dict(row) for row in csv.DictReader(handle)]
