"""`taskyard queues [list|pause|resume]`: counts per status and the paused flag."""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from rich.table import Table

from taskyard.app import Taskyard
from taskyard.cli.loading import console, die, print_json, run_app, state
from taskyard.core.job import JobStatus
from taskyard.core.queue import QueueSettings
from taskyard.errors import NotFoundError

group = typer.Typer(help="Queue counts, pause and resume.", invoke_without_command=True)


async def _overview(app: Taskyard) -> list[dict[str, Any]]:
    counts = await app.acounts()
    settings = {s.name: s for s in await app.backend.queues_list()}
    rows = []
    for name in app.queue_names(set(counts) | set(settings)):
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


async def _set_paused(app: Taskyard, queue: str, paused: bool) -> QueueSettings:
    """Pause or resume a queue that exists (as the API's 404 says, an unknown name is an
    error, not a new queue)."""
    known = await app.aqueue_names()
    if queue not in known:
        listed = ", ".join(known) if known else "none yet"
        raise NotFoundError(f"no queue named {queue!r} (known queues: {listed})")
    return await (app.apause_queue(queue) if paused else app.aresume_queue(queue))


def _act(queue: str, paused: bool) -> None:
    app = state.app
    try:
        asyncio.run(run_app(app, _set_paused(app, queue, paused)))
    except (NotFoundError, ValueError) as exc:
        raise die(str(exc), code=1) from None
    console.print(f"queue {queue} {'paused' if paused else 'resumed'}", highlight=False)


@group.command()
def pause(queue: str) -> None:
    """Stop every worker from claiming jobs of QUEUE (an existing queue)."""
    _act(queue, True)


@group.command()
def resume(queue: str) -> None:
    """Let workers claim jobs of QUEUE again."""
    _act(queue, False)


def register(cli: typer.Typer) -> None:
    """Add `queues`."""
    cli.add_typer(group, name="queues")
