"""The memory backend's workflows: enqueue a whole graph, read, list, cancel and resume."""

from __future__ import annotations

from datetime import datetime

from taskyard.clock import utcnow
from taskyard.core.job import FINISHED_STATUSES, RETRYABLE_STATUSES, cancelled_job
from taskyard.core.workflow import (
    EdgeState,
    Workflow,
    WorkflowDraft,
    WorkflowHeader,
    WorkflowPage,
    WorkflowStatus,
)
from taskyard.errors import WorkflowNotFound

from .graph import GraphState

__all__ = ("WorkflowsMixin",)


class WorkflowsMixin(GraphState):
    """Workflows as clients see them."""

    async def workflow_enqueue(self, *, workflow: WorkflowDraft, now: datetime | None = None) -> Workflow:
        now = now or utcnow()
        with self._lock:
            if workflow.id not in self._workflows:
                self._workflows[workflow.id] = WorkflowHeader(workflow.id, workflow.name, now)
                self._workflow_steps[workflow.id] = [d.id for d in workflow.steps]
                for job in workflow.jobs(now):
                    self._store(job)
                    self._queue(job.queue)
                    self._place(job)
                for edge in workflow.edges:
                    self._edges[(edge.parent, edge.child)] = edge
                    self._children.setdefault(edge.parent, []).append(edge.child)
                    self._parents.setdefault(edge.child, []).append(edge.parent)
            stored = self._read(workflow.id)
        self._waker.notify()
        assert stored is not None
        return stored

    def _read(self, workflow_id: str) -> Workflow | None:
        header = self._workflows.get(workflow_id)
        if header is None:
            return None
        ids = self._workflow_steps[workflow_id]
        steps = tuple(job for i in ids if (job := self._jobs.get(i)) is not None)
        edges = tuple(self._edges[(p, c)] for c in ids for p in self._parents.get(c, ()))
        return Workflow(header, steps, edges)

    def _must_read(self, workflow_id: str) -> Workflow:
        found = self._read(workflow_id)
        if found is None:
            raise WorkflowNotFound(workflow_id)
        return found

    async def workflow_get(self, *, workflow_id: str) -> Workflow | None:
        with self._lock:
            return self._read(workflow_id)

    async def workflows_list(self, *, limit: int = 50, cursor: str | None = None) -> WorkflowPage:
        with self._lock:
            ids = sorted((i for i in self._workflows if cursor is None or i < cursor), reverse=True)
            page = [w for i in ids[:limit] if (w := self._read(i)) is not None]
        return WorkflowPage(page, page[-1].id if len(ids) > limit and page else None)

    async def workflow_cancel(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        now = now or utcnow()
        with self._lock:
            wf = self._must_read(workflow_id)
            if wf.header.cancelled_at is None:
                self._workflows[workflow_id] = WorkflowHeader(wf.id, wf.name, wf.header.created_at, now)
            for job in wf.steps:
                if job.status not in FINISHED_STATUSES:
                    self._store(cancelled_job(job, now))
            return self._must_read(workflow_id)

    async def workflows_prune(self, *, finished_before: datetime, limit: int = 1000) -> int:
        with self._lock:
            doomed = []
            for workflow_id in sorted(self._workflows):
                wf = self._read(workflow_id)
                assert wf is not None
                if wf.status is not WorkflowStatus.RUNNING and (wf.finished_at or wf.header.created_at) < finished_before:
                    doomed.append(wf)
                if len(doomed) >= limit:
                    break
            for wf in doomed:
                del self._workflows[wf.id]
                for step_id in self._workflow_steps.pop(wf.id):
                    self._jobs.pop(step_id, None)
                    for parent in self._parents.pop(step_id, ()):
                        self._edges.pop((parent, step_id), None)
                        self._children.pop(parent, None)
        return len(doomed)

    async def workflow_retry(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        now = now or utcnow()
        with self._lock:
            wf = self._must_read(workflow_id)
            self._workflows[workflow_id] = WorkflowHeader(wf.id, wf.name, wf.header.created_at)
            for step_id in self._workflow_steps[workflow_id]:
                job = self._jobs.get(step_id)
                if job is None or job.status not in RETRYABLE_STATUSES:
                    continue
                if any(s is EdgeState.FAILED for _, s in self._in_states(step_id)):
                    continue
                self._retried_step(job, now)
            after = self._must_read(workflow_id)
        self._waker.notify()
        return after


