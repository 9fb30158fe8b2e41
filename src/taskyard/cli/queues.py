"""`taskyard queues [list|pause|resume]`: counts per status and the paused flag."""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from rich.table import Table

from taskyard.app import Taskyard
from taskyard.cli.loading import console, print_json, run_app, state
from taskyard.core.job import JobStatus

group = typer.Typer(help="Queue counts, pause and resume.", invoke_without_command=True)


async def _overview(app: Taskyard) -> list[dict[str, Any]]:
    counts = await app.acounts()
    settings = {s.name: s for s in await app.backend.queues_list()}
    rows = []
    for name in sorted(set(counts) | set(settings)):
        s = settings.get(name)
        rows.append({
            "queue": name,
            "paused": bool(s and s.paused),
            "concurrency": s.concurrency if s else None,
            **counts.get(name, {st.value: 0 for st in JobStatus}),
        })
    return rows


@group.callback()
def overview(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Counts per queue and status."""
    if ctx.invoked_subcommand is not None:
        return
    app = state.app
    rows = asyncio.run(run_app(app, _overview(app)))
    if as_json:
        print_json(rows)
        return
    table = Table("queue", "paused", *[s.value for s in JobStatus])
    for row in rows:
        table.add_row(str(row["queue"]), "yes" if row["paused"] else "", *[str(row[s.value]) for s in JobStatus])
    console.print(table)


@group.command()
def pause(queue: str) -> None:
    """Stop every worker from claiming jobs of QUEUE."""
    app = state.app
    asyncio.run(run_app(app, app.apause_queue(queue)))
    console.print(f"queue {queue} paused")


@group.command()
def resume(queue: str) -> None:
    """Let workers claim jobs of QUEUE again."""
    app = state.app
    asyncio.run(run_app(app, app.aresume_queue(queue)))
    console.print(f"queue {queue} resumed")


def register(cli: typer.Typer) -> None:
    """Add `queues`."""
    cli.add_typer(group, name="queues")
