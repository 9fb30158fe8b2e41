"""Seed 001 — the task server application: load the configuration, create the app, let each task
module register itself on it (`collect_analytics(app)`, `collect_events(app)`), and serve HTTP on
port 5050 for health checks, stopping cleanly on SIGTERM.

    python -m examples.task_server                          # the seed's index.ts → start.ts
    taskyard --app examples.task_server:app run             # the same, through the CLI
    curl http://127.0.0.1:5050/health/services              # both collectors RUNNING

Configuration is taskyard's (defaults < taskyard.toml < TASKYARD_* < flags); each module reads
its own section, e.g. `TASKYARD_SERVICES__COLLECT_EVENTS__SOURCE=/var/log/k8s-events.jsonl`:

    [services.collect-events]
    source = "k8s-events.jsonl"   # one Kubernetes event (JSON) per line, appended by a watcher
    interval = 5
    [services.collect-analytics]
    interval = 60

The seed runs one replica "as tasks should only run once"; here both collectors are leader-only,
so several replicas are safe too. Tasks reach shared resources through `Resources` (the seed's
`app.service('analytics')`): the recorded events and the analytics snapshots live in the app's own
database (a table `example_records` beside taskyard's, `examples/records.py`; SQLite or
PostgreSQL), so `GET /api/v1/analytics` serves the same latest snapshot from every replica.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from examples.records import Records
from taskyard import PeriodicService, PeriodicServiceConfig, Taskyard
from taskyard.clock import Clock
from taskyard.http.api import app_router


@dataclass
class Resources:
    """What the task modules share, in the app's database: the cluster events recorded (one per
    uid) and the latest analytics snapshot."""

    records: Records

    async def record_event(self, uid: str, event: dict[str, Any]) -> bool:
        """Store an event once per uid; False when it was recorded already."""
        return await self.records.add("k8s-events", uid, event)

    async def tallies(self) -> tuple[Counter[str], list[dict[str, Any]]]:
        """Events per "namespace/reason", and the warnings."""
        events = (await self.records.all("k8s-events")).values()
        return (Counter(f"{e['namespace']}/{e['reason']}" for e in events),
                [e for e in events if e["type"] == "Warning"])

    async def latest(self) -> dict[str, Any]:
        """The latest analytics snapshot ({} before the first)."""
        return await self.records.get("analytics", "latest") or {}


# -- task module: collect events (the seed's collect-events) -----------------------------------
class KubeEvent(BaseModel):
    """The fields of a Kubernetes event the collector keeps."""

    uid: str
    namespace: str = "default"
    reason: str
    type: str = "Normal"
    message: str = ""


class EventCollector(PeriodicService):
    """Reads the events appended to `source` since its last run and enqueues one job per event,
    keyed by the event's uid (after a restart the file is read again: each uid counts once)."""

    extra_options = ("source",)

    def __init__(self, app: Taskyard) -> None:
        super().__init__(config=PeriodicServiceConfig(interval=5.0, leader_only=True, timeout=60.0))
        self.app = app
        self.offset = 0

    async def execute(self) -> None:
        source = Path(self.options.get("source", "k8s-events.jsonl"))
        lines, self.offset = await asyncio.to_thread(_read_from, source, self.offset)
        events = [KubeEvent.model_validate_json(line) for line in lines if line.strip()]
        await self.app.aenqueue_many(
            {"task": "events.record", "payload": e.model_dump(), "unique_key": f"k8s-event:{e.uid}"}
            for e in events
        )


def _read_from(path: Path, offset: int) -> tuple[list[str], int]:
    """Whole lines after `offset`, and the new offset (a half-written last line waits)."""
    if not path.exists():
        return [], offset
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    complete = data[: data.rfind(b"\n") + 1]
    return complete.decode().splitlines(), offset + len(complete)


def collect_events(app: Taskyard, resources: Resources) -> None:
    """Register the event collector and the task that records each event."""

    @app.task("events.record", queue="events")
    async def record_event(event: KubeEvent) -> str:
        if not await resources.record_event(event.uid, event.model_dump()):
            return "already recorded"
        return event.reason

    app.service("collect-events", name="Kubernetes event collector", critical=True)(EventCollector)


# -- task module: collect analytics (the seed's collect-analytics) -----------------------------
def collect_analytics(app: Taskyard, resources: Resources) -> None:
    """Register a periodic snapshot of the system's usage: jobs per queue and status, and the
    cluster events seen so far."""

    @app.task("analytics.collect", queue="analytics", timeout=60)
    async def collect() -> dict[str, Any]:
        events, warnings = await resources.tallies()
        snapshot = {
            "at": app.clock.now().isoformat(),
            "jobs": await app.acounts(),
            "events": dict(events),
            "warnings": len(warnings),
        }
        await resources.records.put("analytics", "latest", snapshot)
        return {"queues": len(snapshot["jobs"]), "event_kinds": len(snapshot["events"])}

    class AnalyticsCollector(PeriodicService):
        """Enqueues one `analytics.collect` per tick (the work runs on any worker)."""

        def __init__(self) -> None:
            # A first snapshot at start: `/api/v1/analytics` has something to show at once.
            super().__init__(config=PeriodicServiceConfig(interval=60.0, leader_only=True, run_on_start=True))

        async def execute(self) -> None:
            await app.aenqueue("analytics.collect")

    app.service("collect-analytics", name="Analytics collector", critical=True)(AnalyticsCollector)

    routes = app_router(app, tags=["analytics"])

    @routes.get("/analytics")
    async def latest() -> dict[str, Any]:
        """The latest analytics snapshot (viewer role)."""
        return await resources.latest()


# -- the application -------------------------------------------------------------------------
def create_app(backend: str | None = None, *, clock: Clock | None = None,
               resources: Resources | None = None) -> Taskyard:
    """The seed's `start()` up to `listen`: the app, then each task module on it."""
    app = Taskyard(backend, clock=clock)
    shared = resources if resources is not None else Resources(Records(app))
    app.resources = shared
    collect_analytics(app, shared)
    collect_events(app, shared)
    return app


app = create_app()


def main() -> int:
    """The seed's `init()`: load the configuration, start the task server, serve until a signal."""
    from taskyard.config import load_settings
    from taskyard.errors import ConfigError
    from taskyard.server import TaskServer, setup_logging

    try:
        settings = load_settings()  # taskyard.toml, TASKYARD_*; HTTP on 5050 by default
        setup_logging(settings)
        server = TaskServer(app, settings)
        server.build()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return server.serve()


if __name__ == "__main__":
    sys.exit(main())
