"""Workflows built with `app.workflow`, run end to end by an in-process worker: a 100-way
fan-out read back typed in the fan-in, the `continue` and `fail` policies, retry-resume and
cancel. Parametrised over the backends that store workflows (tests/support/workflows.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskyard import JobStatus, StepFailedError, Taskyard, WorkflowStatus
from taskyard.testing import drain
from tests.support.backends import isolated_url
from tests.support.workflows import WORKFLOW_KINDS, Item, workflow_app


@pytest.fixture(params=WORKFLOW_KINDS)
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Taskyard]:
    async with isolated_url(request.param, tmp_path) as url:
        app = workflow_app(url)
        async with app:
            yield app


def _task(app: Taskyard, name: str):  # the handles the app registered
    return app.tasks[name]


async def test_a_fan_in_reads_every_result_of_a_100_way_map_typed_in_map_order(app: Taskyard) -> None:
    wf = app.workflow("squares")
    fetch = wf.map("wf.fetch", [Item(n=i) for i in range(100)], name="fetch")
    wf.step("wf.total", None, name="total", after=fetch)
    stored = await wf.aenqueue()
    assert [j.status for j in stored.steps].count(JobStatus.BLOCKED) == 1

    await drain(app, concurrency=20)

    done = await app.aget_workflow(stored.id)
    assert done is not None and done.status is WorkflowStatus.COMPLETED
    [total] = done.step("total")
    assert total.result == {
        "sum": sum(i * i for i in range(100)), "models": True, "failed": [],
        "workflow_id": stored.id, "step": "total",
    }
    assert [j.step for j in done.step("fetch")] == [f"fetch[{i}]" for i in range(100)]


async def test_continue_policy_runs_the_summary_after_a_failed_step_and_the_workflow_fails(app: Taskyard) -> None:
    wf = app.workflow("report")
    fetch = wf.map("wf.fetch", [{"n": 2}, {"n": -1}, {"n": 3}], name="fetch")
    wf.step("wf.total", None, name="total", after={fetch: "continue"})
    stored = await wf.aenqueue()

    await drain(app)

    done = await app.aget_workflow(stored.id)
    assert done is not None
    [total] = done.step("total")
    assert total.status is JobStatus.COMPLETED
    assert total.result["sum"] == 4 + 9 and total.result["failed"] == ["fetch[1]"]
    # `continue` lets the summary run, but the failure still fails the workflow.
    assert done.status is WorkflowStatus.FAILED


async def test_ignore_policy_does_not_fail_the_workflow_and_a_failed_plain_parent_is_reported(
    app: Taskyard,
) -> None:
    seen: dict[str, object] = {}

    @app.task("wf.inspect")
    async def inspect(payload: None, ctx) -> None:  # type: ignore[no-untyped-def]
        try:
            ctx.results("broken")
        except StepFailedError as exc:
            seen["error"] = str(exc)
        seen["jobs"] = [(j.step, j.status) for j in ctx.parent_jobs("broken")]

    wf = app.workflow("lenient")
    broken = wf.step("wf.fetch", {"n": -5}, name="broken")
    wf.step("wf.inspect", None, after={broken: "ignore"})
    stored = await wf.aenqueue()

    await drain(app)

    done = await app.aget_workflow(stored.id)
    assert done is not None and done.status is WorkflowStatus.COMPLETED
    assert "parent step 'broken' ended failed (ValueError: no square for -5)" in str(seen["error"])
    assert seen["jobs"] == [("broken", JobStatus.FAILED)]


async def test_fail_policy_cancels_the_dependents_and_a_retry_resumes_the_workflow(app: Taskyard) -> None:
    wf = app.workflow("strict")
    first = wf.step("wf.fetch", {"n": -2}, name="first")
    wf.step("wf.sync_total", None, name="total", after=wf.map("wf.fetch", [{"n": 1}], name="fetch", after=first))
    stored = await wf.aenqueue()

    await drain(app)
    failed = await app.aget_workflow(stored.id)
    assert failed is not None and failed.status is WorkflowStatus.FAILED
    assert [j.status for j in failed.steps] == [JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CANCELLED]

    retried = await app.aretry_workflow(stored.id)
    assert retried.status is WorkflowStatus.RUNNING
    assert [j.status for j in retried.steps] == [JobStatus.PENDING, JobStatus.BLOCKED, JobStatus.BLOCKED]
    # Still failing: the step fails again and its children are cancelled again.
    await drain(app)
    again = await app.aget_workflow(stored.id)
    assert again is not None and again.status is WorkflowStatus.FAILED


async def test_a_sync_handler_reads_its_parents_results_and_cancel_stops_the_rest(app: Taskyard) -> None:
    wf = app.workflow("sync")
    fetch = wf.map("wf.fetch", [{"n": 1}, {"n": 2}], name="fetch")
    wf.step("wf.sync_total", None, name="total", after=fetch)
    stored = await wf.aenqueue()
    await drain(app)
    done = await app.aget_workflow(stored.id)
    assert done is not None and done.step("total")[0].result == 5

    wf = app.workflow("stopped")
    one = wf.step("wf.fetch", {"n": 1}, name="one", delay=3600)
    wf.step("wf.sync_total", None, name="total", after=one)
    later = await wf.aenqueue()
    cancelled = await app.acancel_workflow(later.id)
    assert cancelled.status is WorkflowStatus.CANCELLED
    assert {j.status for j in cancelled.steps} == {JobStatus.CANCELLED}
    assert [w.id for w in (await app.alist_workflows(limit=10)).workflows] == [later.id, stored.id]
