"""Hostile input to the management API: every bad request is a 422 (or 404/405) in the stable
error shape, never a 500, and nothing it carried is stored.
"""

from __future__ import annotations

import pytest

from taskyard.errors import ScheduleError
from tests.e2e.conftest import Env, make_app

JSON = {"content-type": "application/json"}


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


BAD_BODIES = {
    "invalid utf-8": b'{"task": "always.fail", "payload": "\xff"}',
    "lone surrogate": b'{"task": "always.fail", "payload": {"k": "\\ud800"}}',
    "lone surrogate in a key": b'{"task": "always.fail", "payload": {"\\udfff": 1}}',
    "NaN": b'{"task": "always.fail", "payload": {"x": NaN}}',
    "Infinity delay": b'{"task": "math.add", "payload": {"a": 1, "b": 1}, "delay": Infinity}',
    "too deep": b'{"task": "always.fail", "payload": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "5000-digit number": b'{"task": "always.fail", "payload": ' + b"7" * 5000 + b"}",
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_unstorable_json_bodies_are_422_and_store_nothing(env: Env, body: bytes) -> None:
    headers = {**env.creds.admin_jwt, **JSON}
    err = _error(await env.client.post("/api/v1/jobs", headers=headers, content=body), 422, "validation_error")
    assert err["details"][0]["loc"] == ["body"]
    assert (await env.app.alist_jobs()).jobs == []
    # The job list still answers (a stored lone surrogate made every listing fail).
    assert (await env.client.get("/api/v1/jobs", headers=env.creds.admin_jwt)).status_code == 200


async def test_a_lone_surrogate_cannot_poison_the_schedule_list(env: Env) -> None:
    headers = {**env.creds.admin_jwt, **JSON}
    body = b'{"name": "s", "task": "always.fail", "every": 60, "payload": "\\ud800"}'
    _error(await env.client.post("/api/v1/schedules", headers=headers, content=body), 422, "validation_error")
    listed = await env.client.get("/api/v1/schedules", headers=env.creds.admin_jwt)
    assert listed.status_code == 200 and listed.json() == []


async def test_surrogate_pairs_are_fine(env: Env) -> None:
    headers = {**env.creds.admin_jwt, **JSON}
    body = b'{"task": "always.fail", "payload": {"emoji": "\\ud83d\\ude00"}}'
    created = await env.client.post("/api/v1/jobs", headers=headers, content=body)
    assert created.status_code == 201, created.text
    assert created.json()["payload"] == {"emoji": "\N{GRINNING FACE}"}


@pytest.mark.parametrize("run_at", ["9999-12-31T23:00:00-14:00", "0001-01-01T00:00:00+14:00"])
async def test_run_at_out_of_range_in_utc_is_422(env: Env, run_at: str) -> None:
    body = {"task": "math.add", "payload": {"a": 1, "b": 1}, "run_at": run_at}
    err = _error(await env.client.post("/api/v1/jobs", headers=env.creds.admin_jwt, json=body), 422, "validation_error")
    assert err["details"][0]["loc"] == ["body", "run_at"]
    assert (await env.app.alist_jobs()).jobs == []


async def test_run_at_with_an_offset_is_stored_in_utc(env: Env) -> None:
    body = {"task": "math.add", "payload": {"a": 1, "b": 1}, "run_at": "2100-01-01T12:00:00+02:00"}
    created = await env.client.post("/api/v1/jobs", headers=env.creds.admin_jwt, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["run_at"] == "2100-01-01T10:00:00Z"


async def test_job_list_time_range(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    await env.app.aenqueue("math.add", {"a": 1, "b": 1})
    inverted = {"created_after": "2030-01-01T00:00:00Z", "created_before": "2020-01-01T00:00:00Z"}
    err = _error(await c.get("/api/v1/jobs", headers=admin, params=inverted), 422, "validation_error")
    assert err["details"][0]["loc"] == ["query", "created_after"]
    out_of_range = {"created_before": "9999-12-31T23:00:00-14:00"}
    _error(await c.get("/api/v1/jobs", headers=admin, params=out_of_range), 422, "validation_error")
    _error(await c.get("/api/v1/jobs", headers=admin, params={"created_after": "2020-01-01T00:00:00"}), 422, "validation_error")
    window = {"created_after": "2020-01-01T00:00:00+01:00", "created_before": "2100-01-01T00:00:00-05:00"}
    assert len((await c.get("/api/v1/jobs", headers=admin, params=window)).json()["jobs"]) == 1


WRONG_TYPES = [
    ("POST", "/api/v1/jobs", {"task": "math.add", "payload": {"a": 1, "b": 1}, "priority": True}, ["body", "priority"]),
    ("POST", "/api/v1/jobs", {"task": "math.add", "payload": {"a": 1, "b": 1}, "priority": "5"}, ["body", "priority"]),
    ("POST", "/api/v1/jobs", {"task": "math.add", "payload": {"a": 1, "b": 1}, "delay": "60"}, ["body", "delay"]),
    ("PATCH", "/api/v1/queues/math", {"concurrency": True}, ["body", "concurrency"]),
    ("PATCH", "/api/v1/queues/math", {"concurrency": "3"}, ["body", "concurrency"]),
    ("PATCH", "/api/v1/queues/math", {"rate_limit": {"limit": True, "period": 1}}, ["body", "rate_limit", "limit"]),
    ("PATCH", "/api/v1/queues/math", {"rate_limit": {"limit": 5, "period": 1e-300}}, ["body", "rate_limit", "period"]),
    ("POST", "/api/v1/schedules", {"name": "s", "task": "math.add", "every": "60"}, ["body", "every"]),
    ("POST", "/api/v1/schedules", {"name": "s", "task": "math.add", "every": 60, "enabled": "false"}, ["body", "enabled"]),
    ("POST", "/api/v1/schedules", {"name": "s", "task": "math.add", "every": 60, "misfire_cap": True}, ["body", "misfire_cap"]),
]


@pytest.mark.parametrize(("method", "path", "body", "loc"), WRONG_TYPES, ids=[str(b) for _, _, b, _ in WRONG_TYPES])
async def test_wrong_types_are_not_coerced(env: Env, method: str, path: str, body: dict, loc: list[str]) -> None:
    response = await env.client.request(method, path, headers=env.creds.admin_jwt, json=body)
    err = _error(response, 422, "validation_error")
    assert err["details"][0]["loc"] == loc
    assert (await env.app.alist_jobs()).jobs == []
    settings = await env.app.backend.queue_get(queue="math")
    assert settings.concurrency is None and settings.rate_limit is None
    assert await env.app.schedules.aget("s") is None


@pytest.mark.parametrize("field", ["task", "tz", "jitter", "misfire", "misfire_cap", "enabled"])
async def test_schedule_patch_refuses_null_and_changes_nothing(env: Env, field: str) -> None:
    c, admin = env.client, env.creds.admin_jwt
    body = {"name": "nightly", "task": "math.add", "cron": "30 6 * * *", "payload": {"a": 1, "b": 2}}
    assert (await c.post("/api/v1/schedules", headers=admin, json=body)).status_code == 201
    before = await env.app.schedules.aget("nightly")
    err = _error(await c.patch("/api/v1/schedules/nightly", headers=admin, json={field: None}), 422, "validation_error")
    assert err["details"][0]["loc"] == ["body", field]
    assert await env.app.schedules.aget("nightly") == before
    # The schedule is still served (a stored `enabled: null` made it unreadable).
    assert (await c.get("/api/v1/schedules/nightly", headers=admin)).status_code == 200
    assert (await c.get("/api/v1/schedules", headers=admin)).status_code == 200


async def test_schedule_patch_null_still_clears_the_clearable(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    body = {"name": "s", "task": "math.add", "cron": "30 6 * * *", "payload": {"a": 1, "b": 2}, "queue": "q", "priority": 3}
    assert (await c.post("/api/v1/schedules", headers=admin, json=body)).status_code == 201
    patched = await c.patch("/api/v1/schedules/s", headers=admin, json={"cron": None, "every": 60, "queue": None, "priority": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["cron"] is None and patched.json()["every"] == 60
    assert patched.json()["queue"] is None and patched.json()["priority"] is None


def test_python_api_refuses_a_non_boolean_enabled() -> None:
    with pytest.raises(ScheduleError, match="enabled"):
        make_app().schedules.build("s", task="math.add", every=60, enabled=None)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/nope"), ("POST", "/api/v1/nope/x"), ("GET", "/api/v1/jobs/..%2F..%2Fetc"),
     ("GET", "/api/v1/queues/a%2Fb"), ("POST", "/api/v1/services/tick/explode"), ("GET", "/api/v1/")],
)
async def test_unknown_api_routes_are_404_in_the_error_shape(env: Env, method: str, path: str) -> None:
    _error(await env.client.request(method, path, headers=env.creds.admin_jwt), 404, "not_found")


async def test_wrong_method_is_405_in_the_error_shape(env: Env) -> None:
    response = await env.client.put("/api/v1/jobs", headers=env.creds.admin_jwt, json={})
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"
    _error(await env.client.delete("/api/v1/queues/math", headers=env.creds.admin_jwt), 405, "method_not_allowed")


async def test_trailing_slash_still_redirects(env: Env) -> None:
    response = await env.client.get("/api/v1/jobs/", headers=env.creds.admin_jwt)
    assert response.status_code == 307 and response.headers["location"].endswith("/api/v1/jobs")


@pytest.mark.parametrize("value", ["0.5", "1700000000", "1e9"])
async def test_numbers_are_not_datetimes(env: Env, value: str) -> None:
    c, admin = env.client, env.creds.admin_jwt
    err = _error(await c.get("/api/v1/jobs", headers=admin, params={"created_before": value}), 422, "validation_error")
    assert err["details"][0]["loc"] == ["query", "created_before"]
    body = {"task": "math.add", "payload": {"a": 1, "b": 1}, "run_at": float(value)}
    err = _error(await c.post("/api/v1/jobs", headers=admin, json=body), 422, "validation_error")
    assert err["details"][0]["loc"] == ["body", "run_at"]
    assert (await env.app.alist_jobs()).jobs == []
