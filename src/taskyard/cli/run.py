"""`taskyard run`: the task server (workers, scheduler, maintenance, services, HTTP)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer

from taskyard.cli.loading import server_settings, state
from taskyard.errors import ConfigError


def fail(exc: Exception) -> typer.Exit:
    """Print the error on one line (never wrapped) and return the Exit to raise."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def restart_process(reason: str) -> None:
    """Replace this process with a fresh run of the same command line (same pid, arguments and
    environment): what the worker asks for when lost threads reach their limit."""
    logging.getLogger("taskyard.server").warning("restarting the process: %s", reason)
    logging.shutdown()  # flush every handler: exec discards unwritten buffers
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)  # noqa: S606 - this process's own command line


def serve(
    overrides: dict[str, Any],
    *,
    only: str | None = None,
    service: str | None = None,
    config: Path | None = None,
    burst: bool = False,
) -> None:
    """Load settings (with CLI `overrides`), run a `TaskServer` until it stops, exit with its code."""
    from taskyard.server import TaskServer, setup_logging  # heavy: only for serving commands

    try:
        settings = server_settings(config, **overrides)
        setup_logging(settings)
        server = TaskServer(state.app, settings, only=only, service=service, burst=burst)
        server.build()
        code = server.serve()
    except ConfigError as exc:
        raise fail(exc) from None
    if server.recycle_reason is not None:
        restart_process(server.recycle_reason)
    raise typer.Exit(code)


def register(cli: typer.Typer) -> None:
    """Add `run`."""

    @cli.command()
    def run(
        host: str | None = typer.Option(None, "--host", help="HTTP address (default 127.0.0.1)."),
        port: int | None = typer.Option(None, "--port", "-p", help="HTTP port (default 5050; 0 picks one)."),
        only: str | None = typer.Option(
            None, "--only", help="Roles of this process: worker,scheduler,maintenance,api,services."
        ),
        queues: str | None = typer.Option(None, "--queues", "-q", help="Comma-separated queues to work."),
        concurrency: int | None = typer.Option(None, "--concurrency", "-c", help="Jobs run at once."),
        service: str | None = typer.Option(None, "--service", help="Run this one user service alone."),
        config: Path | None = typer.Option(None, "--config", help="Settings file (default ./taskyard.toml)."),
        no_http: bool = typer.Option(False, "--no-http", help="Serve no HTTP (no health endpoints)."),
        isolation: str | None = typer.Option(
            None, "--isolation", help='"task" (each task\'s own, default) or "process" (every job in a child).'
        ),
    ) -> None:
        """Run the task server until SIGTERM/SIGINT, then drain and exit 0."""
        overrides: dict[str, Any] = {}
        http: dict[str, Any] = {}
        if host is not None:
            http["host"] = host
        if port is not None:
            http["port"] = port
        if no_http:
            http["enabled"] = False
        if http:
            overrides["http"] = http
        worker: dict[str, Any] = {}
        if queues is not None:
            worker["queues"] = queues
        if concurrency is not None:
            worker["concurrency"] = concurrency
        if isolation is not None:
            worker["isolation"] = isolation
        if worker:
            overrides["worker"] = worker
        serve(overrides, only=only, service=service, config=config)
