"""Protocols of backends that can also write inside the application's own open transaction
(PostgreSQL; MySQL for jobs): what `connection=` on an enqueue needs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from taskyard.core.job import Job, JobDraft
from taskyard.core.workflow import Workflow, WorkflowDraft

__all__ = ("TransactionalEnqueue", "TransactionalWorkflows")


@runtime_checkable
class TransactionalEnqueue(Protocol):
    """A backend that can also store jobs inside the application's own open transaction
    (PostgreSQL): what `app.enqueue(..., connection=conn)` needs. Backends without it refuse
    `connection=` with a `ConfigError` naming the backend (see `Taskyard.store_drafts`)."""

    async def job_enqueue_in_transaction(
        self, *, connection: Any, drafts: Sequence[JobDraft], now: datetime | None = None
    ) -> list[Job]:
        """`job_enqueue_many`, but on the caller's `connection` (a driver connection of the
        store), in its current transaction: the jobs exist if and only if it commits, and
        workers are woken only then. A connection of the wrong kind raises `TypeError`.
        """
        ...


@runtime_checkable
class TransactionalWorkflows(Protocol):
    """A backend that can also store a whole workflow inside the application's own open
    transaction (PostgreSQL), as `TransactionalEnqueue` does for jobs."""

    async def workflow_enqueue_in_transaction(
        self, *, connection: Any, workflow: WorkflowDraft, now: datetime | None = None
    ) -> Workflow:
        """`workflow_enqueue`, but on the caller's `connection` (a driver connection of the
        store), in its current transaction: the header, every step and every edge exist if and
        only if it commits, and workers are woken only then. A connection of the wrong kind
        raises `TypeError`.
        """
        ...
