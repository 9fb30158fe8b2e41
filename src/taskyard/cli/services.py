"""`taskyard services`: the services a `taskyard run` process of this app would run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from taskyard.cli.loading import console, print_json, run_app, server_settings, state
from taskyard.errors import ConfigError


def describe(only: str | None, service: str | None, config: Path | None) -> list[dict[str, Any]]:
    """Build (without starting) the services of a server process and describe each."""
    from taskyard.server import TaskServer
    from taskyard.services.periodic import PeriodicService

    settings = server_settings(config)
    server = TaskServer(state.app, settings, only=only, service=service)
    server.build()
    rows = []
    for entry in server.manager.services():
        svc = entry.service
        periodic = isinstance(svc, PeriodicService)
        interval = svc.config.interval if isinstance(svc, PeriodicService) else None
        rows.append({
            "id": entry.id,
            "name": entry.name,
            "kind": "periodic" if periodic else "service",
            "critical": entry.critical,
            "auto_start": entry.auto_start,
            "depends_on": list(entry.depends_on),
            "interval": interval,
            # Restarted by the manager when it fails (live counts: /health/services, the API).
            "restarts": entry.critical and server.manager.auto_restart,
            "max_consecutive_failures": (
                svc.config.max_consecutive_failures if isinstance(svc, PeriodicService) else None
            ),
            "lease": (lease := svc.lease()) and lease["name"],
            "user": entry.id in state.app.service_specs,
        })
    return rows


async def current_leaders(app: Any) -> list[dict[str, Any]]:
    """Every known lease (built-in duties and each user service's) with its holder."""
    from taskyard.services.leader import holder_pid, known_leases

    await app.open()
    rows = []
    for name in known_leases(app.service_specs):
        info = await app.backend.leader_get(name=name)
        host, pid = holder_pid(info.holder) if info is not None else (None, None)
        rows.append({
            "lease": name,
            "holder": info.holder if info is not None else None,
            "host": host,
            "pid": pid,
            "expires_at": info.expires_at.isoformat() if info is not None else None,
        })
    return rows


def fail(exc: Exception) -> typer.Exit:
    """Print the error on one line (never wrapped) and return the Exit to raise."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def register(cli: typer.Typer) -> None:
    """Add `services list` and `services leaders`."""
    group = typer.Typer(help="The services of a task server process.", no_args_is_help=True)
    cli.add_typer(group, name="services")

    @group.command("list")
    def list_(
        only: str | None = typer.Option(None, "--only", help="Roles, as for `run --only`."),
        service: str | None = typer.Option(None, "--service", help="As for `run --service`."),
        config: Path | None = typer.Option(None, "--config", help="Settings file."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """List the services `taskyard run` would start, in start order."""
        try:
            rows = describe(only, service, config)
        except ConfigError as exc:
            raise fail(exc) from None
        if as_json:
            print_json(rows)
            return
        from rich.table import Table

        table = Table(
            "id", "name", "kind", "critical", "auto start", "interval", "error after", "restarted",
            "lease", "depends on",
        )
        for row in rows:
            limit = row["max_consecutive_failures"]
            table.add_row(
                row["id"] + (" (app)" if row["user"] else ""), row["name"], row["kind"],
                "yes" if row["critical"] else "no", "yes" if row["auto_start"] else "no",
                "" if row["interval"] is None else str(row["interval"]),
                "" if limit is None else ("never" if limit == 0 else f"{limit} failed runs"),
                "with backoff" if row["restarts"] else "no", row["lease"] or "",
                ", ".join(row["depends_on"]),
            )
        console.print(table)

    @group.command("leaders")
    def leaders(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
        """Who holds each leadership lease now (one per leader-only duty), read from the backend."""
        app = state.app
        try:
            rows = asyncio.run(run_app(app, current_leaders(app)))
        except ConfigError as exc:
            raise fail(exc) from None
        if as_json:
            print_json(rows)
            return
        from rich.table import Table

        table = Table("lease", "holder", "host", "pid", "expires at")
        for row in rows:
            table.add_row(
                row["lease"], row["holder"] or "(nobody)", row["host"] or "",
                "" if row["pid"] is None else str(row["pid"]), row["expires_at"] or "",
            )
        console.print(table)
