"""`taskyard schedules list|add|remove|pause|resume|trigger|next`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

import typer
from rich.table import Table

from taskyard.cli.loading import console, die, print_json, run_app, state
from taskyard.core.schedule import Schedule
from taskyard.errors import NotFoundError, TaskyardError

group = typer.Typer(help="Stored schedules: list, add, remove, pause, resume, trigger, next fires.",
                    no_args_is_help=True)


def _call(make: Any) -> Any:
    """Run `make(app)` (a coroutine) and turn taskyard errors into a one-line exit."""
    app = state.app
    coro: Coroutine[Any, Any, Any] = make(app)
    try:
        return asyncio.run(run_app(app, coro))
    except NotFoundError as exc:
        raise die(str(exc), code=1) from None
    except (TaskyardError, ValueError) as exc:
        raise die(str(exc)) from None


def _when(value: object) -> str:
    return value.isoformat(timespec="seconds") if value else "-"  # type: ignore[attr-defined]


def _table(schedules: list[Schedule]) -> Table:
    table = Table("name", "when", "tz", "task", "misfire", "state", "owner", "last fire", "next fire",
                  "source", "confirmed")
    for s in schedules:
        when = s.cron if s.cron is not None else f"every {s.every:g}s"
        source = f"code: {s.declarer}" if s.source == "code" and s.declarer else s.source
        table.add_row(s.name, when, s.tz, s.task, s.misfire.value,
                      "enabled" if s.enabled else "paused", s.owner or "-",
                      _when(s.last_fire_at), _when(s.next_fire_at), source, _when(s.confirmed_at))
    return table


@group.command("list")
def list_(
    owner: str | None = typer.Option(None, "--owner", help="Only this owner's schedules."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Stored schedules, sorted by name."""
    schedules = _call(lambda app: app.schedules.alist(owner=owner))
    if as_json:
        print_json([s.to_json() for s in schedules])
        return
    console.print(_table(schedules))


@group.command()
def add(
    name: str,
    task: str = typer.Option(..., "--task", help="Task to enqueue at each fire."),
    cron: str | None = typer.Option(None, "--cron", help="Cron expression (5 fields, or 6 with seconds last) or @daily..."),
    every: float | None = typer.Option(None, "--every", help="Interval in seconds (instead of --cron)."),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone the cron expression is read in."),
    payload: str | None = typer.Option(None, "--payload", help="JSON payload."),
    queue: str | None = typer.Option(None, "--queue"),
    priority: int | None = typer.Option(None, "--priority"),
    jitter: float = typer.Option(0.0, "--jitter", help="Random delay up to N seconds per fire."),
    misfire: str = typer.Option("skip", "--misfire", help="skip | once | all"),
    misfire_cap: int = typer.Option(100, "--misfire-cap", help="Most missed fires 'all' catches up."),
    misfire_grace: float | None = typer.Option(
        None, "--misfire-grace", help="Seconds a fire may be late and still run (default: half the period, at most 60)."
    ),
    owner: str | None = typer.Option(None, "--owner"),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a schedule of the same name."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Store a new schedule (validated first: cron, time zone, task and payload)."""
    try:
        data = json.loads(payload) if payload is not None else None
    except json.JSONDecodeError as exc:
        raise die(f"--payload is not JSON: {exc}") from None
    schedule = _call(lambda app: app.schedules.aadd(
        name, task=task, cron=cron, every=every, tz=tz, payload=data, queue=queue,
        priority=priority, jitter=jitter, misfire=misfire, misfire_cap=misfire_cap,
        misfire_grace=misfire_grace, owner=owner, replace=replace,
    ))
    if as_json:
        print_json(schedule.to_json())
        return
    console.print(f"schedule {schedule.name} added; next fire {_when(schedule.next_fire_at)}")


@group.command()
def remove(name: str) -> None:
    """Delete a schedule."""
    _call(lambda app: app.schedules.aremove(name))
    console.print(f"schedule {name} removed")


@group.command()
def pause(name: str) -> None:
    """Stop firing a schedule until it is resumed."""
    _call(lambda app: app.schedules.apause(name))
    console.print(f"schedule {name} paused")


@group.command()
def resume(name: str) -> None:
    """Fire a paused schedule again (from its next fire time after now)."""
    schedule = _call(lambda app: app.schedules.aresume(name))
    console.print(f"schedule {name} resumed; next fire {_when(schedule.next_fire_at)}")


@group.command()
def trigger(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Enqueue one job of a schedule now."""
    job = _call(lambda app: app.schedules.atrigger(name))
    if as_json:
        print_json(job.to_json())
        return
    console.print(f"schedule {name} triggered: job {job.id}")


@group.command("next")
def next_(
    name: str,
    count: int = typer.Option(5, "-n", "--count", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The next fire times of a schedule (UTC and the schedule's zone)."""
    from zoneinfo import ZoneInfo

    async def both(app: Any) -> tuple[Schedule, list[Any]]:
        schedule = await app.schedules.aget(name)
        if schedule is None:
            raise NotFoundError(f"no schedule named {name!r}")
        return schedule, await app.schedules.anext_fires(name, count)

    schedule, fires = _call(both)
    if as_json:
        print_json([f.isoformat() for f in fires])
        return
    zone = ZoneInfo(schedule.tz)
    table = Table("#", "UTC", schedule.tz)
    for i, fire in enumerate(fires, 1):
        table.add_row(str(i), _when(fire), _when(fire.astimezone(zone)))
    console.print(table)


def register(cli: typer.Typer) -> None:
    """Add `schedules`."""
    cli.add_typer(group, name="schedules")
