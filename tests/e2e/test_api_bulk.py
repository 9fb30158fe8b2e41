"""`GET /jobs?q=` (search) and `POST /jobs/bulk` (retry, cancel, delete by ids or by filter)."""

from __future__ import annotations

import pytest

from taskyard.drafts import EnqueueItem
from taskyard.http.bulk import BULK_LIMIT
from taskyard.testing import drain
from tests.e2e.conftest import Env

BULK = "/api/v1/jobs/bulk"


async def _enqueue(env: Env, task: str, payload: object, **options: object) -> str:
    response = await env.client.post(
        "/api/v1/jobs", headers=env.creds.admin_jwt, json={"task": task, "payload": payload, **options}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_search_combines_with_filters_and_pages(env: Env) -> None:
    c, viewer = env.client, env.creds.viewer_jwt
    ids = [await _enqueue(env, "math.add", {"a": i, "b": 7001}) for i in range(5)]
    other = await _enqueue(env, "always.fail", {"customer": "acme-7001"})
    found = await c.get("/api/v1/jobs", headers=viewer, params={"q": "7001", "limit": 2})
    assert found.status_code == 200, found.text
    seen = [j["id"] for j in found.json()["jobs"]]
    cursor = found.json()["next_cursor"]
    while cursor:
        page = (await c.get("/api/v1/jobs", headers=viewer, params={"q": "7001", "limit": 2, "cursor": cursor})).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
    assert seen == [other, *reversed(ids)]
    only = await c.get("/api/v1/jobs", headers=viewer, params={"q": "ACME", "queue": "default"})
    assert [j["id"] for j in only.json()["jobs"]] == [other]
    none = await c.get("/api/v1/jobs", headers=viewer, params={"q": "acme", "queue": "math"})
    assert none.json() == {"jobs": [], "next_cursor": None}


@pytest.mark.parametrize("q", ["", "ab", "x" * 201])
async def test_search_text_is_bounded(env: Env, q: str) -> None:
    response = await env.client.get("/api/v1/jobs", headers=env.creds.viewer_jwt, params={"q": q})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert "q" in response.text


async def test_bulk_retry_by_filter_retries_only_failed(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="taskyard.http.audit")
    failing = [await _enqueue(env, "always.fail", {"n": i}) for i in range(3)]
    ok = await _enqueue(env, "math.add", {"a": 1, "b": 2})
    await drain(env.app)
    response = await env.client.post(BULK, headers=env.creds.admin_jwt, json={
        "action": "retry", "filter": {"status": "failed", "q": "always"}})
    assert response.status_code == 200, response.text
    assert response.json() == {"matched": 3, "done": 3, "skipped": [], "skipped_total": 0, "next_cursor": None}
    for job_id in failing:
        assert (await env.app.aget_job(job_id)).status.value == "pending"
    assert (await env.app.aget_job(ok)).status.value == "completed"
    audited = [r.getMessage() for r in caplog.records if r.name == "taskyard.http.audit"]
    assert any("jobs.bulk_retry on filter" in m and "done=3" in m and "status=failed" in m for m in audited)


async def test_bulk_by_ids_counts_and_skips(env: Env) -> None:
    c, admin = env.client, env.creds.admin_key
    done = await _enqueue(env, "math.add", {"a": 1, "b": 2})
    await drain(env.app)
    pending = await _enqueue(env, "math.add", {"a": 2, "b": 2})
    missing = "01M831ZZHYQ2TZ80B4QPZGTAF6"
    cancel = await c.post(BULK, headers=admin, json={"action": "cancel", "ids": [pending, done, missing]})
    body = cancel.json()
    assert (body["matched"], body["done"], body["skipped_total"]) == (3, 1, 2), body
    assert {s["id"] for s in body["skipped"]} == {done, missing}
    assert (await env.app.aget_job(pending)).status.value == "cancelled"

    delete = await c.post(BULK, headers=admin, json={"action": "delete", "ids": [pending, done]})
    assert delete.json()["done"] == 2
    assert await env.app.aget_job(pending) is None and await env.app.aget_job(done) is None


async def test_bulk_delete_refuses_active_jobs(env: Env) -> None:
    pending = await _enqueue(env, "math.add", {"a": 1, "b": 1})
    response = await env.client.post(BULK, headers=env.creds.admin_jwt, json={"action": "delete", "filter": {}})
    body = response.json()
    assert (body["matched"], body["done"]) == (1, 0), body
    assert "not finished" in body["skipped"][0]["reason"]
    assert (await env.app.aget_job(pending)) is not None


async def test_bulk_filter_is_capped_per_call(env: Env) -> None:
    await env.app.aenqueue_many([EnqueueItem("math.add", {"a": i, "b": 0}) for i in range(BULK_LIMIT + 3)])
    first = (await env.client.post(BULK, headers=env.creds.admin_jwt, json={
        "action": "cancel", "filter": {"queue": "math"}})).json()
    assert (first["matched"], first["done"]) == (BULK_LIMIT, BULK_LIMIT)
    assert first["next_cursor"] is not None
    rest = (await env.client.post(BULK, headers=env.creds.admin_jwt, json={
        "action": "cancel", "filter": {"queue": "math"}, "cursor": first["next_cursor"]})).json()
    assert (rest["matched"], rest["done"], rest["next_cursor"]) == (3, 3, None)


@pytest.mark.parametrize("body", [
    {"action": "retry"},
    {"action": "retry", "ids": ["01M831ZZHYQ2TZ80B4QPZGTAF6"], "filter": {}},
    {"action": "purge", "ids": ["01M831ZZHYQ2TZ80B4QPZGTAF6"]},
    {"action": "retry", "ids": []},
    {"action": "retry", "ids": ["not-an-id"]},
    {"action": "retry", "ids": ["01M831ZZHYQ2TZ80B4QPZGTAF6"] * 1001},
    {"action": "retry", "filter": {"status": "lost"}},
    {"action": "retry", "filter": {"colour": "red"}},
    {"action": "retry", "filter": {"q": "ab"}},
    {"action": "retry", "ids": ["01M831ZZHYQ2TZ80B4QPZGTAF6"], "cursor": "01M831ZZHYQ2TZ80B4QPZGTAF6"},
    {"action": "retry", "filter": {"created_after": "2026-01-02T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}},
])
async def test_bulk_rejects_bad_bodies(env: Env, body: dict) -> None:
    response = await env.client.post(BULK, headers=env.creds.admin_jwt, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
