"""Task specifications: what `@app.task` records about a handler (data only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from taskyard.core.job import DEFAULT_MAX_RESCUES
from taskyard.core.retry import Retry
from taskyard.core.unique import UniqueRule

__all__ = ("ISOLATIONS", "Isolation", "TaskSpec")

#: Where a task's handler runs: "thread" (async on the worker's loop, sync in a thread) or
#: "process" (in a child process of the worker, killed on timeout or past its memory limit).
Isolation = Literal["thread", "process"]
ISOLATIONS: tuple[Isolation, ...] = ("thread", "process")


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A registered task: its handler, payload model and policies."""

    name: str
    handler: Callable[..., Any]
    payload_model: type[BaseModel] | None  # None: the handler takes raw JSON
    queue: str = "default"
    priority: int = 0
    retry: Retry = field(default_factory=Retry)
    timeout: float | None = None
    unique: UniqueRule | None = None
    max_rescues: int = DEFAULT_MAX_RESCUES  # runs again after losing its worker, at most this often
    is_async: bool = False
    wants_ctx: bool = False
    arity: int = 1  # how many of (payload, ctx) the handler takes
    isolation: Isolation = "thread"
    memory_limit: float | None = None  # MB of RSS a child running it may use (process only)
