"""`ctx.results` and `ctx.parent_jobs` inside handlers (memory://, an in-process worker): by
name, by step reference and by handle; a name that is not a parent; a job outside a workflow."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from taskyard import JobContext, JobStatus, Taskyard
from taskyard.core import ids
from taskyard.testing import drain
from taskyard.workflow import StepRef


def _error(call: Any) -> str:
    try:
        call()
    except ValueError as exc:
        return str(exc)
    return "no error"


class Total(BaseModel):
    value: int


async def test_a_step_reads_a_plain_parent_typed_by_its_ref_and_refuses_a_stranger() -> None:
    app = Taskyard("memory://")
    seen: dict[str, Any] = {}
    refs: dict[str, StepRef[Total]] = {}

    @app.task("add")
    async def add(numbers: list[int]) -> Total:
        return Total(value=sum(numbers))

    @app.task("show")
    async def show(payload: None, ctx: JobContext) -> None:
        seen["by_ref"] = ctx.results(refs["add"])
        seen["by_name"] = ctx.results("add")
        seen["jobs"] = [(j.step, j.status) for j in ctx.parent_jobs(add)]
        seen["where"] = (ctx.workflow_id, ctx.step)
        seen["stranger"] = _error(lambda: ctx.results("other"))
        seen["handle"] = _error(lambda: ctx.results(show))

    @app.task("alone")
    async def alone(payload: None, ctx: JobContext) -> None:
        seen["alone"] = (ctx.workflow_id, ctx.step)
        seen["outside"] = _error(lambda: ctx.results("add"))

    async with app:
        wf = app.workflow("sums")
        refs["add"] = wf.step(add, [1, 2, 3])
        wf.step(show, None, after=refs["add"])
        stored = await wf.aenqueue()
        await app.aenqueue("alone")
        await drain(app)
        done = await app.aget_workflow(stored.id)

    assert done is not None and [j.status for j in done.steps] == [JobStatus.COMPLETED] * 2
    assert seen["by_ref"] == Total(value=6) and seen["by_name"] == Total(value=6)
    assert seen["jobs"] == [("add", JobStatus.COMPLETED)]
    assert seen["where"] == (stored.id, "show") and seen["alone"] == (None, None)
    assert seen["stranger"] == "'other' is not a parent step of 'show' (its parents: 'add')"
    assert "has no parent step running task 'show'" in seen["handle"]
    assert "is not a workflow step with parent steps" in seen["outside"]


def test_a_chosen_workflow_id_must_be_an_id() -> None:
    app = Taskyard("memory://")
    chosen = ids.new_id()
    assert app.workflow("w", workflow_id=chosen).id == chosen
    with pytest.raises(ValueError, match="bad workflow id 'run-1'"):
        app.workflow("w", workflow_id="run-1")
