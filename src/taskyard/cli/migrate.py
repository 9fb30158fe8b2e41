"""`taskyard migrate`: bring the backend's schema up to date."""

from __future__ import annotations

import asyncio

import typer

from taskyard.backends import backend_from_url
from taskyard.cli.loading import console, die, state
from taskyard.config import default_backend_url
from taskyard.errors import TaskyardError


async def _migrate(url: str) -> int:
    backend = backend_from_url(url)
    try:
        return await backend.migrate()
    finally:
        await backend.close()


def register(cli: typer.Typer) -> None:
    """Add `migrate`."""

    @cli.command()
    def migrate() -> None:
        """Create or upgrade the schema (SQLite does this by itself at start)."""
        url = state.app.backend.url if state.app_spec else default_backend_url()
        try:
            version = asyncio.run(_migrate(url))
        except TaskyardError as exc:
            raise die(str(exc), code=1) from None
        console.print(f"schema is at version {version}")

