"""The workflow routes of /api/v1 through the in-process ASGI client: a workflow enqueued with
the builder, run, listed, read with its steps and edges, cancelled and resumed, audited."""

from __future__ import annotations

import logging

import pytest

from taskyard.testing import drain
from tests.e2e.conftest import Env


async def test_workflow_round_trip_list_get_cancel_retry(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    c, admin, viewer = env.client, env.creds.admin_jwt, env.creds.viewer_key
    wf = env.app.workflow("sums")
    adds = wf.map("math.add", [{"a": i, "b": 1} for i in range(3)], name="add")
    wf.step("math.add", {"a": 0, "b": 0}, name="total", after=adds)
    stored = await wf.aenqueue()

    listed = await c.get("/api/v1/workflows", headers=viewer)
    assert listed.status_code == 200, listed.text
    [summary] = listed.json()["workflows"]
    assert summary["id"] == stored.id and summary["name"] == "sums" and summary["status"] == "running"
    assert summary["counts"]["pending"] == 3 and summary["counts"]["blocked"] == 1
    assert "steps" not in summary and listed.json()["next_cursor"] is None

    got = (await c.get(f"/api/v1/workflows/{stored.id}", headers=viewer)).json()
    assert [s["step"] for s in got["steps"]] == ["add[0]", "add[1]", "add[2]", "total"]
    assert {s["workflow_id"] for s in got["steps"]} == {stored.id}
    assert len(got["edges"]) == 3
    assert {(e["policy"], e["state"]) for e in got["edges"]} == {("fail", "open")}

    caplog.set_level(logging.INFO, logger="taskyard.http.audit")
    cancelled = await c.post(f"/api/v1/workflows/{stored.id}/cancel", headers=admin)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancelled_at"]
    assert {s["status"] for s in cancelled.json()["steps"]} == {"cancelled"}

    retried = await c.post(f"/api/v1/workflows/{stored.id}/retry", headers=admin)
    assert retried.status_code == 200 and retried.json()["status"] == "running"
    assert [s["status"] for s in retried.json()["steps"]] == ["pending", "pending", "pending", "blocked"]
    await drain(env.app)
    done = (await c.get(f"/api/v1/workflows/{stored.id}", headers=viewer)).json()
    assert done["status"] == "completed" and done["finished_at"]
    assert [s["result"] for s in done["steps"]] == [1, 2, 3, 0]
    assert {e["state"] for e in done["edges"]} == {"done"}

    audited = [r.getMessage() for r in caplog.records if r.name == "taskyard.http.audit"]
    assert any(f"admin action workflow.cancel on {stored.id}" in m for m in audited)
    assert any(f"admin action workflow.retry on {stored.id}" in m for m in audited)


async def test_workflows_list_pages_with_a_cursor(env: Env) -> None:
    made = []
    for n in range(3):
        wf = env.app.workflow(f"w{n}")
        wf.step("math.add", {"a": n, "b": n}, name="only")
        made.append((await wf.aenqueue()).id)
    c, viewer = env.client, env.creds.viewer_jwt
    first = (await c.get("/api/v1/workflows", headers=viewer, params={"limit": 2})).json()
    second = (await c.get("/api/v1/workflows", headers=viewer,
                          params={"limit": 2, "cursor": first["next_cursor"]})).json()
    seen = [w["id"] for w in first["workflows"] + second["workflows"]]
    assert seen == sorted(made, reverse=True) and second["next_cursor"] is None


async def test_viewer_reads_workflows_but_cannot_cancel_or_retry(env: Env) -> None:
    wf = env.app.workflow("guarded")
    wf.step("math.add", {"a": 1, "b": 1}, name="one")
    stored = await wf.aenqueue()
    c = env.client
    for action in ("cancel", "retry"):
        refused = await c.post(f"/api/v1/workflows/{stored.id}/{action}", headers=env.creds.viewer_jwt)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert (await env.app.aget_workflow(stored.id)).status.value == "running"  # type: ignore[union-attr]
    bad = await c.get("/api/v1/workflows/..%2Fetc", headers=env.creds.viewer_jwt)
    assert bad.status_code in (404, 422)
