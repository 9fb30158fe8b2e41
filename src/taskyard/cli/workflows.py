"""`taskyard workflows [list]|show|cancel|retry`."""

from __future__ import annotations

import asyncio
import json

import typer
from rich.table import Column, Table

from taskyard.cli.loading import console, die, print_json, run_app, state
from taskyard.core.workflow import Workflow
from taskyard.errors import TaskyardError

group = typer.Typer(help="List, inspect, cancel and retry workflows.")


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"  # type: ignore[attr-defined]


def _counts(workflow: Workflow) -> str:
    return " ".join(f"{status}={n}" for status, n in workflow.counts().items() if n)


def _list(limit: int, cursor: str | None, as_json: bool) -> None:
    app = state.app
    page = asyncio.run(run_app(app, app.alist_workflows(limit=limit, cursor=cursor)))
    if as_json:
        print_json({
            "workflows": [w.to_json(with_steps=False) for w in page.workflows],
            "next_cursor": page.next_cursor,
        })
        return
    # An id is meant to be pasted into `workflows show`: never cut or wrapped.
    longest = max((len(w.id) for w in page.workflows), default=2)
    table = Table(Column("id", no_wrap=True, min_width=longest, overflow="ignore"),
                  "name", "status", "steps", "created", "finished")
    for w in page.workflows:
        table.add_row(w.id, w.name, w.status.value, _counts(w), _when(w.header.created_at), _when(w.finished_at))
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


@group.callback(invoke_without_command=True)
def workflows(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    cursor: str | None = typer.Option(None, "--cursor", help="next_cursor of the previous page"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Workflows, newest first (the same as `workflows list`)."""
    if ctx.invoked_subcommand is None:
        _list(limit, cursor, as_json)


@group.command("list")
def list_(
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    cursor: str | None = typer.Option(None, "--cursor", help="next_cursor of the previous page"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Workflows, newest first."""
    _list(limit, cursor, as_json)


@group.command()
def show(workflow_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """One workflow: its status, every step with its state, and its edges."""
    app = state.app
    workflow = asyncio.run(run_app(app, app.aget_workflow(workflow_id)))
    if workflow is None:
        raise die(f"no workflow with id {workflow_id!r}", code=1)
    if as_json:
        print_json(workflow.to_json())
        return
    _print(workflow)


def _print(workflow: Workflow) -> None:
    """One line per step (never cut: a step's line wraps as the terminal does, ids paste)."""
    out = console.print
    out(f"[bold]{workflow.name}[/] {workflow.id} {workflow.status.value}", highlight=False, soft_wrap=True)
    out(f"created {_when(workflow.header.created_at)}  finished {_when(workflow.finished_at)}  "
        f"{_counts(workflow)}", highlight=False, soft_wrap=True)
    names = {j.id: j.step or j.id for j in workflow.steps}
    width = max((len(j.step or "") for j in workflow.steps), default=0)
    for job in workflow.steps:
        after = ", ".join(
            f"{names.get(e.parent, e.parent)} ({e.policy.value}, {e.state.value})"
            for e in workflow.edges if e.child == job.id
        )
        line = f"{job.step or '-':<{width}}  {job.id}  {job.task}  {job.status.value}  {job.attempt}/{job.max_attempts}"
        if after:
            line += f"  after {after}"
        if job.errors:
            line += f"  {job.errors[-1].type}: {job.errors[-1].message}"
        elif job.result is not None:
            line += f"  -> {json.dumps(job.result)[:200]}"
        out(line, highlight=False, markup=False, soft_wrap=True)


def _act(action: str, workflow_id: str, as_json: bool) -> None:
    app = state.app
    method = app.acancel_workflow if action == "cancel" else app.aretry_workflow
    try:
        workflow = asyncio.run(run_app(app, method(workflow_id)))
    except TaskyardError as exc:
        raise die(str(exc), code=1) from None
    if as_json:
        print_json(workflow.to_json())
    else:
        console.print(f"{workflow.id} {workflow.status.value} {_counts(workflow)}", highlight=False)


@group.command()
def cancel(workflow_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Cancel a whole workflow: steps not started are cancelled, running ones asked to stop."""
    _act("cancel", workflow_id, as_json)


@group.command()
def retry(workflow_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Resume a workflow: its failed and cancelled steps run again."""
    _act("retry", workflow_id, as_json)


def register(cli: typer.Typer) -> None:
    """Add `workflows`."""
    cli.add_typer(group, name="workflows")
