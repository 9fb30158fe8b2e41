"""The memory backend's workflow graph: headers and edges, and the `core.workflow` rules
carried out under the state's lock by whatever finishes, cancels or retries a step."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from taskyard.core.job import FINISHED_STATUSES, Job, JobStatus, retried_job
from taskyard.core.workflow import Edge, EdgeState, WorkflowHeader, edge_state_after
from taskyard.errors import InvalidTransitionError

from .state import MemoryState

__all__ = ("GraphState",)

S = JobStatus


class GraphState(MemoryState):
    """Workflow headers, step lists and edges, with the rules that move steps along them."""

    def __init__(self, url: str = "memory://") -> None:
        super().__init__(url)
        self._workflows: dict[str, WorkflowHeader] = {}
        self._workflow_steps: dict[str, list[str]] = {}
        self._edges: dict[tuple[str, str], Edge] = {}
        self._children: dict[str, list[str]] = {}
        self._parents: dict[str, list[str]] = {}

    def _set_edge(self, edge: Edge, state: EdgeState) -> None:
        self._edges[(edge.parent, edge.child)] = dataclasses.replace(edge, state=state)

    def _in_states(self, child: str) -> list[tuple[str, EdgeState]]:
        return [(p, self._edges[(p, child)].state) for p in self._parents.get(child, ())]

    def _step_finished(self, job: Job, now: datetime) -> int:
        """`job`, a workflow step, has just finished: settle its open edges by their policy,
        unblock children left with nothing open, cancel children a `fail` edge failed, and
        carry on from each cancelled child. Returns how many steps became pending."""
        woken = 0
        work = [job]
        while work:
            parent = work.pop()
            for child_id in self._children.get(parent.id, ()):
                edge = self._edges[(parent.id, child_id)]
                if edge.state is not EdgeState.OPEN:
                    continue
                self._set_edge(edge, edge_state_after(parent.status, edge.policy))
                child = self._jobs.get(child_id)
                if child is None or child.status is not S.BLOCKED:
                    continue
                states = [state for _, state in self._in_states(child_id)]
                if EdgeState.FAILED in states:
                    reason = f"parent step {parent.step!r} {parent.status.value}"
                    work.append(self._store(child.replace(
                        status=S.CANCELLED, finished_at=now, result={"cancelled": reason}
                    )))
                elif EdgeState.OPEN not in states:
                    self._make_ready(self._store(child.replace(status=S.PENDING, run_at=now)))
                    woken += 1
        return woken

    def _after_finish(self, job: Job, now: datetime) -> int:
        """Run the workflow rules when `job` (just stored) is a finished workflow step."""
        if job.workflow_id is None or job.status not in FINISHED_STATUSES:
            return 0
        return self._step_finished(job, now)

    def _retried_step(self, job: Job, now: datetime) -> Job:
        """The manual retry of workflow step `job`, stored: refused while a parent's `fail`
        edge failed, `blocked` while an edge into it is open; the children it had cancelled
        are revived (back to `blocked`), and theirs, down the graph."""
        states = self._in_states(job.id)
        for parent, state in states:
            if state is EdgeState.FAILED:
                raise InvalidTransitionError.parent_step_failed(job.id, job.step, parent)
        after = self._store(retried_job(job, now, blocked=any(s is EdgeState.OPEN for _, s in states)))
        if after.status is S.PENDING:
            self._make_ready(after)
        work = [after.id]
        while work:
            parent_id = work.pop()
            for child_id in self._children.get(parent_id, ()):
                edge = self._edges[(parent_id, child_id)]
                child = self._jobs.get(child_id)
                if child is None:
                    continue
                if edge.state is EdgeState.FAILED or (edge.state is EdgeState.DONE and child.status is S.BLOCKED):
                    self._set_edge(edge, EdgeState.OPEN)
                if (
                    edge.state is EdgeState.FAILED
                    and child.status is S.CANCELLED
                    and all(s is not EdgeState.FAILED for _, s in self._in_states(child_id))
                ):
                    self._store(retried_job(child, now, blocked=True))
                    work.append(child_id)
        return after
