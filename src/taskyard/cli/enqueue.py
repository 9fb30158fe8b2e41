"""`taskyard enqueue TASK JSON`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from taskyard.cli.loading import console, die, print_json, run_app, state
from taskyard.core.payload import MAX_PAYLOAD_DEPTH
from taskyard.errors import TaskyardError


def register(cli: typer.Typer) -> None:
    """Add `enqueue`."""

    @cli.command()
    def enqueue(
        task: str = typer.Argument(..., help="Task name."),
        payload: str = typer.Argument("null", help="Payload as JSON."),
        delay: float | None = typer.Option(None, "--delay", help="Seconds to wait before running."),
        priority: int | None = typer.Option(None, "--priority", help="Higher runs first."),
        queue: str | None = typer.Option(None, "--queue", help="Override the task's queue."),
        unique_key: str | None = typer.Option(None, "--unique-key", help="Deduplicate on this key."),
        as_json: bool = typer.Option(False, "--json", help="Print the job as JSON."),
    ) -> None:
        """Enqueue one job; prints its id."""
        try:
            data: Any = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise die(f"payload is not valid JSON: {exc}") from None
        except RecursionError:
            raise die(
                f"payload is nested too deeply; the limit is {MAX_PAYLOAD_DEPTH} levels of objects and arrays"
            ) from None
        app = state.app
        try:
            draft = app.build_draft(
                task, data, delay=delay, priority=priority, queue=queue, unique_key=unique_key
            )
            (job,) = asyncio.run(run_app(app, app.aenqueue_many([draft])))
        except (TaskyardError, ValueError) as exc:
            raise die(str(exc)) from None
        duplicate = job.id != draft.id  # the backend answered the job holding the unique key
        if as_json:
            print_json({**job.to_json(), "enqueued": not duplicate})
        elif duplicate:
            console.print(
                f"{job.id} {job.status.value} ({job.task} on {job.queue}): not enqueued again, "
                f"unique key {job.unique_key!r} is held by this job",
                highlight=False,
            )
        else:
            console.print(f"{job.id} {job.status.value} ({job.task} on {job.queue})", highlight=False)
