"""Finding the user's app (`--app MODULE:ATTR` or `TASKYARD_APP`) and shared CLI plumbing."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import typer
from rich.console import Console

from taskyard.app import Taskyard
from taskyard.config import Settings, load_settings

__all__ = ("CliState", "console", "die", "load_app", "print_json", "run_app", "server_settings", "state")

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def die(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def print_json(data: Any) -> None:
    """Machine-readable output for `--json`."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def load_app(spec: str | None, backend_url: str | None = None) -> Taskyard:
    """Import `module:attribute` (from the current directory too) and return the app, on the
    backend at `backend_url` when given (the root command's `--backend`)."""
    if not spec:
        raise die("no app given: pass --app MODULE:APP or set TASKYARD_APP")
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise die(f"cannot import app module {module_name!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, Taskyard):
        raise die(f"{spec!r} is not a Taskyard app (found {type(app).__name__})")
    if app.name is None:
        app.name = f"{module_name}:{attr}"
    app.import_path = f"{module_name}:{attr}"
    if backend_url is not None:
        app.use_backend(backend_url)
    return app


async def run_app(app: Taskyard, coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` (an app call), then close the app's connection."""
    try:
        return await coro
    finally:
        await app.aclose()


@dataclass
class CliState:
    """Options of the root command, available to every subcommand."""

    app_spec: str | None = None
    #: The root command's `--backend`: the app runs on it instead of its own choice.
    backend_url: str | None = None
    _app: Taskyard | None = None

    @property
    def app(self) -> Taskyard:
        if self._app is None:
            self._app = load_app(self.app_spec, self.backend_url)
        return self._app


state = CliState()


def server_settings(config: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """The settings of a task server this command builds: `load_settings` with the command's
    `overrides`, and the root command's `--backend` over every other source."""
    if state.backend_url is not None:
        overrides["backend"] = state.backend_url
    return load_settings(config, **overrides)
