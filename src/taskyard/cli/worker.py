"""`taskyard worker`: a task server process with the worker and maintenance roles and no HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from taskyard.cli.run import serve


def serve_roles(roles: str, overrides: dict[str, Any], *, config: Path | None = None, burst: bool = False) -> None:
    """Serve `roles` without HTTP (no health endpoints: nothing to bind on a worker host)."""
    serve({**overrides, "http": {"enabled": False}}, only=roles, config=config, burst=burst)


def _set(section: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        section[key] = value


def register(cli: typer.Typer) -> None:
    """Add `worker`."""

    @cli.command()
    def worker(
        queues: str | None = typer.Option(None, "--queues", "-q", help="Comma-separated queues (default: all)."),
        concurrency: int | None = typer.Option(None, "--concurrency", "-c", help="Jobs run at once (default 10)."),
        burst: bool = typer.Option(False, "--burst", help="Exit once nothing is due and nothing runs."),
        lease: float | None = typer.Option(None, "--lease", help="Seconds a claim holds a job between heartbeats."),
        drain_timeout: float | None = typer.Option(None, "--drain-timeout", help="Seconds in-flight jobs get on stop."),
        poll_interval: float | None = typer.Option(None, "--poll-interval", help="Seconds between polls when idle."),
        stop_grace: float | None = typer.Option(
            None, "--stop-grace", help="Seconds a timed-out sync handler gets to end before its thread is lost."
        ),
        max_lost_threads: int | None = typer.Option(
            None, "--max-lost-threads", help="Lost handler threads at which the worker restarts (0: never)."
        ),
        rescue_interval: float | None = typer.Option(None, "--rescue-interval", help="Seconds between lease rescues."),
        leader_ttl: float | None = typer.Option(None, "--leader-ttl", help="Seconds a maintenance leader lease lasts."),
        isolation: str | None = typer.Option(
            None, "--isolation", help='"task" (each task\'s own, default) or "process" (every job in a child).'
        ),
        maintenance: bool = typer.Option(
            True, "--maintenance/--no-maintenance", help="Take part in leader-elected maintenance."
        ),
        config: Path | None = typer.Option(None, "--config", help="Settings file (default ./taskyard.toml)."),
    ) -> None:
        """Run a worker until SIGTERM/SIGINT (in-flight jobs finish, the rest is handed back).

        Options left out come from taskyard.toml and TASKYARD_* like `taskyard run`.
        """
        worker_s: dict[str, Any] = {}
        for key, value in (
            ("queues", queues), ("concurrency", concurrency), ("lease", lease),
            ("drain_timeout", drain_timeout), ("poll_interval", poll_interval),
            ("stop_grace", stop_grace), ("max_lost_threads", max_lost_threads),
            ("isolation", isolation),
        ):
            _set(worker_s, key, value)
        overrides: dict[str, Any] = {"worker": worker_s} if worker_s else {}
        if rescue_interval is not None:
            overrides["maintenance"] = {"rescue_interval": rescue_interval}
        if leader_ttl is not None:
            overrides["scheduler"] = {"leader_ttl": leader_ttl}
        serve_roles("worker,maintenance" if maintenance else "worker", overrides, config=config, burst=burst)
