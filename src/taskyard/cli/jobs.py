"""`taskyard jobs list|show|cancel|retry`."""

from __future__ import annotations

import asyncio
import json

import typer
from rich.table import Column, Table

from taskyard.cli.loading import console, die, print_json, run_app, state
from taskyard.core.job import JobStatus
from taskyard.errors import TaskyardError

group = typer.Typer(help="List, inspect, cancel and retry jobs.", no_args_is_help=True)


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"  # type: ignore[attr-defined]


@group.command("list")
def list_(
    queue: str | None = typer.Option(None, "--queue"),
    status: JobStatus | None = typer.Option(None, "--status"),
    task: str | None = typer.Option(None, "--task"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    cursor: str | None = typer.Option(None, "--cursor", help="next_cursor of the previous page"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Jobs, newest first."""
    app = state.app
    page = asyncio.run(
        run_app(app, app.alist_jobs(queue=queue, status=status, task=task, limit=limit, cursor=cursor))
    )
    if as_json:
        print_json({"jobs": [j.to_json() for j in page.jobs], "next_cursor": page.next_cursor})
        return
    # An id is meant to be pasted into `jobs show`: never cut or wrapped, the others give way.
    longest = max((len(j.id) for j in page.jobs), default=2)
    table = Table(
        Column("id", no_wrap=True, min_width=longest, overflow="ignore"),
        "task", "queue", "status", "attempt", "rescues", "created", "finished",
    )
    for j in page.jobs:
        table.add_row(j.id, j.task, j.queue, j.status.value, f"{j.attempt}/{j.max_attempts}",
                      f"{j.rescues}/{j.max_rescues}", _when(j.created_at), _when(j.finished_at))
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


@group.command()
def show(job_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """One job, with its errors and result."""
    app = state.app
    job = asyncio.run(run_app(app, app.aget_job(job_id)))
    if job is None:
        raise die(f"no job with id {job_id!r}", code=1)
    data = job.to_json()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if key == "errors":
            continue
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        console.print(f"[bold]{key:>16}[/] {shown}", highlight=False)
    for err in job.errors:
        console.print(f"\n[bold red]attempt {err.attempt}: {err.type}: {err.message}[/]", highlight=False)
        if err.traceback:
            console.print(err.traceback, highlight=False, markup=False)


def _act(action: str, job_id: str, as_json: bool) -> None:
    app = state.app
    method = app.acancel_job if action == "cancel" else app.aretry_job
    try:
        job = asyncio.run(run_app(app, method(job_id)))
    except TaskyardError as exc:
        raise die(str(exc), code=1) from None
    if as_json:
        print_json(job.to_json())
    else:
        note = " (cancellation requested)" if job.cancel_requested else ""
        console.print(f"{job.id} {job.status.value}{note}", highlight=False)


@group.command()
def cancel(job_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Cancel a scheduled or pending job, or ask a running one to stop."""
    _act("cancel", job_id, as_json)


@group.command()
def retry(job_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Run a failed or cancelled job again."""
    _act("retry", job_id, as_json)


def register(cli: typer.Typer) -> None:
    """Add `jobs`."""
    cli.add_typer(group, name="jobs")
