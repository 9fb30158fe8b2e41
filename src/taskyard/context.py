"""`JobContext`: what a handler receives as its second argument."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskyard.core.job import Job, Progress

__all__ = ("JobContext",)

_log = logging.getLogger("taskyard.job")


@dataclass(slots=True)
class JobContext:
    """The running job (`ctx.job`, `ctx.attempt`), progress reporting and a logger.

    `progress()` never blocks: the worker writes the latest value with the next heartbeat
    (or sooner), so it may be called from async and sync handlers alike.
    """

    job: Job
    report: Callable[[str, Progress], None] = field(repr=False)
    logger: logging.LoggerAdapter[logging.Logger] = field(init=False, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logger = logging.LoggerAdapter(
            _log, {"job_id": self.job.id, "task": self.job.task, "attempt": self.job.attempt}
        )

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, ..."""
        return self.job.attempt

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0-100, with an optional message)."""
        self.report(self.job.id, Progress.of(percent, message))
