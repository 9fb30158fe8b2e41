"""`taskyard scheduler`: a task server process with only the scheduler role (leader election
and firing), no HTTP. On SIGTERM it stops firing and resigns, so a successor takes over at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from taskyard.cli.worker import serve_roles


def register(cli: typer.Typer) -> None:
    """Add `scheduler`."""

    @cli.command()
    def scheduler(
        leader_ttl: float | None = typer.Option(
            None, "--leader-ttl", help="Seconds a leader's lease lasts without renewal (default 15)."
        ),
        tick_interval: float | None = typer.Option(
            None, "--tick-interval", help="Longest wait between looks at the schedules (default 1)."
        ),
        config: Path | None = typer.Option(None, "--config", help="Settings file (default ./taskyard.toml)."),
    ) -> None:
        """Fire due schedules (when elected leader) until SIGTERM/SIGINT."""
        section: dict[str, Any] = {}
        if leader_ttl is not None:
            section["leader_ttl"] = leader_ttl
        if tick_interval is not None:
            section["tick_interval"] = tick_interval
        serve_roles("scheduler", {"scheduler": section} if section else {}, config=config)
