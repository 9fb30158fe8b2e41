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
`app.service('analytics')`); `GET /api/v1/analytics` serves the latest snapshot.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taskyard import PeriodicService, PeriodicServiceConfig, Taskyard
from taskyard.clock import Clock
from taskyard.http.api import app_router


@dataclass
class Resources:
    """What the task modules share: tallies of cluster events and the analytics snapshots."""

    events: Counter[str] = field(default_factory=Counter)  # "namespace/reason" → count
    seen: set[str] = field(default_factory=set)  # event uids already counted
    warnings: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))
    snapshots: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))


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
        if event.uid in resources.seen:
            return "already recorded"
        resources.seen.add(event.uid)
        resources.events[f"{event.namespace}/{event.reason}"] += 1
        if event.type == "Warning":
            resources.warnings.append(event.model_dump())
        return event.reason

    app.service("collect-events", name="Kubernetes event collector", critical=True)(EventCollector)


# -- task module: collect analytics (the seed's collect-analytics) -----------------------------
def collect_analytics(app: Taskyard, resources: Resources) -> None:
    """Register a periodic snapshot of the system's usage: jobs per queue and status, and the
    cluster events seen so far."""

    @app.task("analytics.collect", queue="analytics", timeout=60)
    async def collect() -> dict[str, Any]:
        snapshot = {
            "at": app.clock.now().isoformat(),
            "jobs": await app.acounts(),
            "events": dict(resources.events),
            "warnings": len(resources.warnings),
        }
        resources.snapshots.append(snapshot)
        return {"queues": len(snapshot["jobs"]), "event_kinds": len(snapshot["events"])}

    class AnalyticsCollector(PeriodicService):
        """Enqueues one `analytics.collect` per tick (the work runs on any worker)."""

        def __init__(self) -> None:
            super().__init__(config=PeriodicServiceConfig(interval=60.0, leader_only=True))

        async def execute(self) -> None:
            await app.aenqueue("analytics.collect")

    app.service("collect-analytics", name="Analytics collector", critical=True)(AnalyticsCollector)

    routes = app_router(app, tags=["analytics"])

    @routes.get("/analytics")
    async def latest() -> dict[str, Any]:
        """The latest analytics snapshot (viewer role)."""
        return resources.snapshots[-1] if resources.snapshots else {}


# -- the application -------------------------------------------------------------------------
def create_app(backend: str | None = None, *, clock: Clock | None = None,
               resources: Resources | None = None) -> Taskyard:
    """The seed's `start()` up to `listen`: the app, then each task module on it."""
    app = Taskyard(backend, clock=clock)
    shared = resources if resources is not None else Resources()
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
