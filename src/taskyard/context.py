"""`JobContext`: what a handler receives as its second argument, and `JobLogger`, its logger."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from taskyard.core.job import Job, Progress

__all__ = ("JobContext", "JobLogger")

_log = logging.getLogger("taskyard.job")


class JobLogger(logging.LoggerAdapter[logging.Logger]):
    """The `taskyard.job` logger with the job's fields (`job_id`, `task`, `queue`, `attempt`)
    on every record, as attributes: what structlog's `ExtraAdder` and sentry-sdk's logging
    integration read. A call's own `extra=` is kept beside them (the job's fields win a clash);
    the standard `LoggerAdapter` would drop it."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), **(self.extra or {})}
        return msg, kwargs


@dataclass(slots=True)
class JobContext:
    """The running job (`ctx.job`, `ctx.attempt`), progress reporting and a logger.

    `progress()` never blocks: the worker writes the latest value with the next heartbeat
    (or sooner), so it may be called from async and sync handlers alike. `ctx.logger` logs
    with the job's fields (`JobLogger`); `ctx.log_fields` are the same fields, for binding
    elsewhere (e.g. `structlog.contextvars.bind_contextvars(**ctx.log_fields)`).
    """

    job: Job
    report: Callable[[str, Progress], None] = field(repr=False)
    logger: JobLogger = field(init=False, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logger = JobLogger(_log, self.log_fields)

    @property
    def log_fields(self) -> dict[str, Any]:
        """The job's identifying fields: `job_id`, `task`, `queue`, `attempt`."""
        job = self.job
        return {"job_id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempt}

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, ..."""
        return self.job.attempt

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0-100, with an optional message)."""
        self.report(self.job.id, Progress.of(percent, message))
