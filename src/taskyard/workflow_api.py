"""`WorkflowApi`: the app's workflow methods — `workflow(name)` to build one, storing it, and
reading, listing, cancelling and retrying stored ones (async, each with its sync twin)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, TypeVar

from taskyard.backends.protocol import Backend
from taskyard.backends.transactional import TransactionalWorkflows
from taskyard.clock import Clock
from taskyard.core.job import Job, JobDraft
from taskyard.core.workflow import Workflow, WorkflowDraft, WorkflowPage
from taskyard.errors import ConfigError
from taskyard.tracing import Tracing, traced_drafts
from taskyard.workflow import WorkflowBuilder, WorkflowHost

__all__ = ("WorkflowApi",)

T = TypeVar("T")


class WorkflowApi:
    """Mixed into `Taskyard`: everything about workflows an application calls."""

    clock: Clock
    enqueue_listeners: list[Callable[[Sequence[Job]], None]]
    tracing: Tracing | None

    # Provided by `Taskyard`.
    async def backend_for_loop(self) -> Backend:
        raise NotImplementedError

    def run_sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        raise NotImplementedError

    def build_draft(
        self,
        task: str,
        payload: Any = None,
        *,
        delay: float | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: str | None = None,
        job_id: str | None = None,
    ) -> JobDraft:
        raise NotImplementedError

    # -- building and storing ----------------------------------------------------------------
    def workflow(self, name: str, *, workflow_id: str | None = None) -> WorkflowBuilder:
        """Start building a workflow called `name` (several may share a name; each gets an id):
        add steps with `wf.step(...)` and `wf.map(...)`, store it with `wf.enqueue()`.

        ```python
        wf = app.workflow("onboard")
        account = wf.step(create_account, Signup(email=...))
        mails = wf.map(send_mail, [...], after=account)
        wf.step(report, None, after={mails: "continue"})
        stored = wf.enqueue()
        ```
        """
        host: WorkflowHost = self
        return WorkflowBuilder(host, name, workflow_id=workflow_id)

    async def store_workflow(self, draft: WorkflowDraft, connection: Any = None) -> Workflow:
        """Store a built workflow in one atomic write and tell the enqueue listeners its steps.
        `connection`: in that open transaction of the caller's, which only a backend with
        `workflow_enqueue_in_transaction` (PostgreSQL) can do; any other raises `ConfigError`
        naming the backend, before anything is stored."""
        backend = await self.backend_for_loop()
        with traced_drafts(self, draft.steps) as stamped:
            traced = dataclasses.replace(draft, steps=tuple(stamped))
            stored = await self._store_workflow(backend, traced, connection)
        for listener in self.enqueue_listeners:
            listener(list(stored.steps))
        return stored

    async def _store_workflow(self, backend: Any, draft: WorkflowDraft, connection: Any) -> Workflow:
        if connection is not None:
            if not isinstance(backend, TransactionalWorkflows):
                scheme = backend.url.partition("://")[0] or "?"
                raise ConfigError(
                    f"a workflow enqueued with connection= (inside your own transaction) needs the "
                    f"PostgreSQL backend; the {scheme} ({type(backend).__name__}) backend cannot take a "
                    "connection: enqueue without connection=, or use a postgresql:// backend"
                )
            stored = await backend.workflow_enqueue_in_transaction(
                connection=connection, workflow=draft, now=self.clock.now()
            )
            return stored
        result: Workflow = await backend.workflow_enqueue(workflow=draft, now=self.clock.now())
        return result

    # -- async API ---------------------------------------------------------------------------
    async def aget_workflow(self, workflow_id: str) -> Workflow | None:
        """Async twin of `get_workflow`."""
        return await (await self.backend_for_loop()).workflow_get(workflow_id=workflow_id)

    async def alist_workflows(self, *, limit: int = 50, cursor: str | None = None) -> WorkflowPage:
        """Async twin of `list_workflows`."""
        if limit < 1 or limit > 1000:
            raise ValueError("limit must be between 1 and 1000")
        return await (await self.backend_for_loop()).workflows_list(limit=limit, cursor=cursor)

    async def acancel_workflow(self, workflow_id: str) -> Workflow:
        """Async twin of `cancel_workflow`."""
        backend = await self.backend_for_loop()
        return await backend.workflow_cancel(workflow_id=workflow_id, now=self.clock.now())

    async def aretry_workflow(self, workflow_id: str) -> Workflow:
        """Async twin of `retry_workflow`."""
        backend = await self.backend_for_loop()
        return await backend.workflow_retry(workflow_id=workflow_id, now=self.clock.now())

    # -- sync facade -------------------------------------------------------------------------
    def get_workflow(self, workflow_id: str) -> Workflow | None:
        """The workflow with its steps (jobs, in step order) and edges, or None."""
        return self.run_sync(lambda: self.aget_workflow(workflow_id))

    def list_workflows(self, *, limit: int = 50, cursor: str | None = None) -> WorkflowPage:
        """Workflows newest first, `limit` per page (1 to 1,000); `cursor` is the previous
        page's `next_cursor`."""
        return self.run_sync(lambda: self.alist_workflows(limit=limit, cursor=cursor))

    def cancel_workflow(self, workflow_id: str) -> Workflow:
        """Cancel a whole workflow: steps not started are cancelled, running ones asked to stop,
        finished ones left as they are. Raises `WorkflowNotFound`."""
        return self.run_sync(lambda: self.acancel_workflow(workflow_id))

    def retry_workflow(self, workflow_id: str) -> Workflow:
        """Resume a failed or cancelled workflow: every failed or cancelled step runs again
        (steps a failed parent had cancelled come back with it). Raises `WorkflowNotFound`."""
        return self.run_sync(lambda: self.aretry_workflow(workflow_id))
