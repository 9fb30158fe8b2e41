"""`taskyard migrate`: bring the backend's schema up to date."""

from __future__ import annotations

import asyncio

import typer

from taskyard.backends import backend_from_url
from taskyard.cli.loading import console, die, state
from taskyard.config import default_backend_url
from taskyard.errors import TaskyardError


async def _migrate(url: str) -> tuple[int, int]:
    """The schema version before and after migrating."""
    backend = backend_from_url(url)
    try:
        before = await backend.schema_version()
        return before, await backend.migrate()
    finally:
        await backend.close()


def outcome(before: int, after: int) -> str:
    """What `migrate` did, in one line."""
    if before == 0:
        return f"created the schema (version {after})"
    if before < after:
        return f"upgraded the schema from version {before} to {after}"
    return f"the schema is already current (version {after}); nothing to do"


def register(cli: typer.Typer) -> None:
    """Add `migrate`."""

    @cli.command()
    def migrate() -> None:
        """Create or upgrade the schema (SQLite does this by itself at start)."""
        url = state.app.backend_url if state.app_spec else state.backend_url or default_backend_url()
        try:
            before, after = asyncio.run(_migrate(url))
        except TaskyardError as exc:
            raise die(str(exc), code=1) from None
        console.print(outcome(before, after), highlight=False)

