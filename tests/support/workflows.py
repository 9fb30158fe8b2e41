"""Workflows for the tests: `Graph`, drafts built straight as `WorkflowDraft`s (no app-level
builder: `Graph().add(name, after=...)`, `.map(name, n, after=...)`, `.draft()`); the backend
kinds the workflow API's end-to-end tests run on, and the app they run."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from taskyard import JobContext, Taskyard
from taskyard.core.ids import new_id, new_id_after
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
        job_id = new_id_after(self.steps[-1].id if self.steps else None)
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


#: Memory now; SQLite once its workflow methods land (the lead removes the marker at merge).
WORKFLOW_KINDS = [
    "memory",
    "sqlite",
]


class Item(BaseModel):
    """A payload of the fan-out steps."""

    n: int


class Fetched(BaseModel):
    """What a fan-out step returns (a model: read back as one in the fan-in)."""

    n: int
    square: int


def workflow_app(url: str) -> Taskyard:
    """An app with a fan-out task (fails for negative `n`), a typed fan-in and a sync one."""
    app = Taskyard(url)

    @app.task("wf.fetch")
    async def fetch(item: Item) -> Fetched:
        if item.n < 0:
            raise ValueError(f"no square for {item.n}")
        return Fetched(n=item.n, square=item.n * item.n)

    @app.task("wf.total")
    async def total(payload: None, ctx: JobContext) -> dict[str, object]:
        fetched = ctx.results(fetch)  # list[Fetched], in map order
        jobs = ctx.parent_jobs(fetch)
        return {
            "sum": sum(f.square for f in fetched),
            "models": all(isinstance(f, Fetched) for f in fetched),
            "failed": [j.step for j in jobs if j.status.value != "completed"],
            "workflow_id": ctx.workflow_id,
            "step": ctx.step,
        }

    @app.task("wf.sync_total")
    def sync_total(payload: None, ctx: JobContext) -> int:
        return sum(f.square for f in ctx.results("fetch"))

    return app
