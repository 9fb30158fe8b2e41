"""The workflow operations of `MysqlBackend`: thin methods over `graph`'s statements, each
one transaction. Mixed into the backend, whose `_run` and `_wake` they use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import TypeVar

from asyncmy.cursors import Cursor

from taskyard.core.workflow import Workflow, WorkflowDraft, WorkflowPage

from . import graph
from .schema import Tables

__all__ = ("WorkflowOps",)

T = TypeVar("T")


class WorkflowOps:
    """`workflow_enqueue`, `workflow_get`, `workflows_list`, `workflow_cancel`, `workflow_retry`."""

    tables: Tables

    async def _run(self, what: str, fn: Callable[[Cursor], Awaitable[T]]) -> T:
        raise NotImplementedError

    def _wake(self, queues: Collection[str]) -> None:
        raise NotImplementedError

    async def workflow_enqueue(self, *, workflow: WorkflowDraft, now: datetime | None = None) -> Workflow:
        stored, woken = await self._run(
            "workflow_enqueue", lambda cur: graph.enqueue(cur, self.tables, workflow, now)
        )
        self._wake(woken)
        return stored

    async def workflow_get(self, *, workflow_id: str) -> Workflow | None:
        return await self._run("workflow_get", lambda cur: graph.read(cur, self.tables, workflow_id))

    async def workflows_list(self, *, limit: int = 50, cursor: str | None = None) -> WorkflowPage:
        return await self._run("workflows_list", lambda cur: graph.read_page(cur, self.tables, limit, cursor))

    async def workflow_cancel(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        return await self._run("workflow_cancel", lambda cur: graph.stop(cur, self.tables, workflow_id, now))

    async def workflows_prune(self, *, finished_before: datetime, limit: int = 1000) -> int:
        return await self._run(
            "workflows_prune", lambda cur: graph.prune(cur, self.tables, finished_before, limit)
        )

    async def workflow_retry(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        after, woken = await self._run(
            "workflow_retry", lambda cur: graph.resume(cur, self.tables, workflow_id, now)
        )
        self._wake(woken)
        return after
