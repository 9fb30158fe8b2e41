"""The root `taskyard` command: global options, then one module per command group."""

from __future__ import annotations

import importlib

import typer

from taskyard.cli.loading import die, state
from taskyard.errors import BackendError, TaskyardError

__all__ = ("cli", "main")

cli = typer.Typer(
    name="taskyard",
    help="taskyard: jobs, workers, schedules and services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Command modules; each defines `register(cli)`.
COMMAND_MODULES = (
    "run",
    "worker",
    "enqueue",
    "jobs",
    "workflows",
    "queues",
    "migrate",
    "schedules",
    "scheduler",
    "services",
    "token",
    "secret",
)


@cli.callback()
def root(
    app: str | None = typer.Option(
        None, "--app", envvar="TASKYARD_APP", help="The app to load, as MODULE:ATTRIBUTE."
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="Backend URL (overrides the app's own, TASKYARD_BACKEND and taskyard.toml)."
    ),
) -> None:
    """taskyard: jobs, workers, schedules and services."""
    state.app_spec = app
    # Handed to the app when it is loaded (`use_backend`) and to the server's settings.
    state.backend_url = backend or None


for _name in COMMAND_MODULES:
    importlib.import_module(f"taskyard.cli.{_name}").register(cli)


def main() -> None:
    """Console-script entry point. A taskyard error that no command turned into a message
    (a bad backend URL while the app is imported, a backend that does not answer) ends the
    command with one line naming it, never a traceback: 1 for the backend, 2 for the input."""
    try:
        cli()
    except BackendError as exc:
        raise SystemExit(die(str(exc), code=1).exit_code) from None
    except TaskyardError as exc:
        raise SystemExit(die(str(exc)).exit_code) from None
