"""Workflows for the dashboard's tests, built straight as `WorkflowDraft`s (no app-level
builder needed): `Graph().add(name, after=...)`, `.map(name, n, after=...)`, `.draft()`."""

from __future__ import annotations

import time
from typing import Any

from taskyard.core.ids import new_id
from taskyard.core.job import JobDraft
from taskyard.core.workflow import Edge, Policy, WorkflowDraft, map_step_name


class Graph:
    """A workflow draft built step by step; `after` names parents, each with the `fail`
    policy unless given as `{parent: policy}`. Workflow ids sort in the order graphs are made."""

    #: The millisecond of the last graph's id: the next one takes a later one.
    _last_ms = 0

    def __init__(self, name: str = "wf", *, queue: str = "wf") -> None:
        ms = max(time.time_ns() // 1_000_000, Graph._last_ms + 1)
        Graph._last_ms = ms
        self.id = new_id(ms)
        self.name = name
        self.queue = queue
        self.steps: list[JobDraft] = []
        self.edges: list[Edge] = []
        self.ids: dict[str, str] = {}

    def add(self, step: str, *, after: list[str] | dict[str, Policy] | None = None, **fields: Any) -> str:
        """Add one step after `after`; returns its job id."""
        job_id = new_id()
        self.steps.append(JobDraft(
            id=job_id, task=f"wf.{step.split('[')[0]}", queue=fields.pop("queue", self.queue),
            payload={"step": step}, workflow_id=self.id, step=step, **fields,
        ))
        self.ids[step] = job_id
        parents = dict.fromkeys(after, Policy.FAIL) if isinstance(after, list) else (after or {})
        for parent, policy in parents.items():
            self.edges.append(Edge(self.ids[parent], job_id, policy))
        return job_id

    def map(self, step: str, count: int, *, after: list[str] | dict[str, Policy] | None = None) -> list[str]:
        """A fanned-out step: `step[0]` .. `step[count - 1]`, each after `after`."""
        return [self.add(map_step_name(step, i), after=after) for i in range(count)]

    def draft(self) -> WorkflowDraft:
        return WorkflowDraft(self.id, self.name, tuple(self.steps), tuple(self.edges))
