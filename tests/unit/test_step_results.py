"""`ctx.results` and `ctx.parent_jobs` inside handlers (memory://, an in-process worker): by
name, by step reference and by handle; a name that is not a parent; a job outside a workflow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from taskyard import BackendUnavailable, FakeClock, JobContext, JobStatus, Taskyard, Workflow
from taskyard.backends.memory import MemoryBackend
from taskyard.core import ids
from taskyard.services.worker.executor import PARENTS_RETRY_DELAY
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


class ParentsUnreadableOnce(MemoryBackend):
    """The memory backend, with the store not answering the first workflow read."""

    failed = False

    async def workflow_get(self, *, workflow_id: str) -> Workflow | None:
        if not self.failed:
            self.failed = True
            raise BackendUnavailable("store unreachable")
        return await super().workflow_get(workflow_id=workflow_id)


async def test_a_step_whose_parents_cannot_be_read_runs_later_without_spending_an_attempt() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    app = Taskyard(ParentsUnreadableOnce(), clock=clock)

    @app.task("one")
    async def one(payload: None) -> int:
        return 1

    @app.task("sum")
    async def total(payload: None, ctx: JobContext) -> int:
        return sum(ctx.results(one)) + 1

    async with app:
        wf = app.workflow("w")
        wf.step(total, None, after=wf.step(one, None))
        stored = await wf.aenqueue()
        await drain(app)
        snoozed = (await app.aget_workflow(stored.id)).step("sum")[0]  # type: ignore[union-attr]
        # A snooze: the attempt ran, and the budget grew by one (`RetryLater`'s rule).
        assert snoozed.status is JobStatus.SCHEDULED and (snoozed.attempt, snoozed.max_attempts) == (1, 2)
        assert not snoozed.errors
        clock.advance(PARENTS_RETRY_DELAY)
        await drain(app)
        done = (await app.aget_workflow(stored.id)).step("sum")[0]  # type: ignore[union-attr]
    assert done.status is JobStatus.COMPLETED and done.result == 2 and done.attempt == 2
