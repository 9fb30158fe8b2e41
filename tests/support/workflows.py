"""The backend kinds the workflow API's end-to-end tests run on, and the app they run."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from taskyard import JobContext, Taskyard

#: Memory now; SQLite once its workflow methods land (the lead removes the marker at merge).
WORKFLOW_KINDS = [
    "memory",
    pytest.param("sqlite", marks=pytest.mark.xfail(reason="workflows on SQLite land with branch wt-sqlite")),
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
