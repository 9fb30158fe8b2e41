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

__all__ = ("CliState", "console", "die", "load_app", "print_json", "run_app", "state")

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


def load_app(spec: str | None) -> Taskyard:
    """Import `module:attribute` (from the current directory too) and return the app."""
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
    _app: Taskyard | None = None

    @property
    def app(self) -> Taskyard:
        if self._app is None:
            self._app = load_app(self.app_spec)
        return self._app


state = CliState()
