"""The tracing hook: what an app calls around each enqueue and each attempt, when a tracer
is plugged in (`app.tracing`; `taskyard.contrib.otel.instrument` plugs in OpenTelemetry).

Only protocols and a null-safe helper live here: nothing imports a tracing library, so an app
without tracing pays nothing for it. Kept below `app` so the app, the worker's executor (also
inside `isolation="process"` children) and the workflow builder can all call it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from taskyard.core.job import Job, JobDraft

__all__ = ("AttemptTrace", "Traced", "Tracing", "traced_drafts")


class AttemptTrace(Protocol):
    """The trace of one attempt of a job, open while its handler runs."""

    def end(self, outcome: str, *, error: BaseException | None = None) -> None:
        """Record how the attempt ended: `outcome` is the worker's outcome kind
        (`completed`, `failed`, `retry_later`, `cancelled`, `released`); `error` the
        exception that failed it (recorded, and the span marked as an error)."""
        ...


class Tracing(Protocol):
    """A tracer plugged into an app (`app.tracing`)."""

    def sending(
        self, drafts: Sequence[JobDraft], *, schedule: str | None = None
    ) -> AbstractContextManager[list[JobDraft]]:
        """Trace the storing of `drafts`: the block receives the drafts to store, each with
        the trace context of its enqueue in its `meta` (a draft that carries one already is
        left as it is); an exception leaving the block is recorded on their traces. `schedule`
        names the schedule whose fire this is."""
        ...

    def processing(self, job: Job) -> AbstractContextManager[AttemptTrace]:
        """Trace one attempt of `job`: the handler runs inside the block (so the spans it
        makes are children of the attempt's), continuing the trace carried in `job.meta`."""
        ...


class Traced(Protocol):
    """Anything that has a tracing hook (a `Taskyard`)."""

    tracing: Tracing | None


@contextlib.contextmanager
def traced_drafts(
    app: Traced, drafts: Sequence[JobDraft], *, schedule: str | None = None
) -> Iterator[list[JobDraft]]:
    """Store `drafts` inside this block to trace their enqueue: it yields the drafts to store,
    stamped with trace context when `app` has tracing (else as they are). Every enqueue path
    of `Taskyard.store_drafts` goes through it; the workflow builder wraps
    `workflow_enqueue` in it with the steps' drafts."""
    tracing = app.tracing
    if tracing is None:
        yield list(drafts)
        return
    with tracing.sending(drafts, schedule=schedule) as stamped:
        yield stamped
