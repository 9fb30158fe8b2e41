"""Hostile input to the management API: every bad request is a 422 (or 404/405) in the stable
error shape, never a 500, and nothing it carried is stored.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Env

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
