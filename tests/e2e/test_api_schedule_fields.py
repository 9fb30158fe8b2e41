"""The schedules API covers every settable field of a schedule (`SETTABLE_FIELDS`): each can
be set on create, changed by a patch, read back, and (where its default is None) cleared."""

from __future__ import annotations

from typing import Any

from taskyard.core.schedule import NULLABLE_FIELDS, SETTABLE_FIELDS
from tests.e2e.conftest import Env

#: A value other than the default for each settable field but `every` (one of cron/every).
CREATED: dict[str, Any] = {
    "task": "math.add", "cron": "15 4 * * *", "tz": "Europe/Paris", "payload": {"a": 1, "b": 2},
    "queue": "nightly", "priority": 5, "jitter": 2.5, "misfire": "all", "misfire_cap": 7,
    "misfire_grace": 12.5, "enabled": False, "owner": "sub:9",
}
#: A second value for every settable field.
PATCHED: dict[str, Any] = {
    "task": "always.fail", "cron": None, "every": 90.0, "tz": "Asia/Tokyo", "payload": {"x": 1},
    "queue": "other", "priority": -1, "jitter": 0.5, "misfire": "once", "misfire_cap": 3,
    "misfire_grace": 0.0, "enabled": True, "owner": "sub:10",
}


def _settable(body: dict[str, Any]) -> dict[str, Any]:
    return {name: body[name] for name in SETTABLE_FIELDS}


async def test_every_settable_field_is_created_patched_read_and_cleared(env: Env) -> None:
    assert set(CREATED) == set(SETTABLE_FIELDS) - {"every"}
    assert set(PATCHED) == set(SETTABLE_FIELDS)
    c, admin, viewer = env.client, env.creds.admin_jwt, env.creds.viewer_jwt

    created = await c.post("/api/v1/schedules", headers=admin, json={"name": "all-fields", **CREATED})
    assert created.status_code == 201, created.text
    assert _settable(created.json()) == {**CREATED, "every": None}
    read = (await c.get("/api/v1/schedules/all-fields", headers=viewer)).json()
    assert _settable(read) == {**CREATED, "every": None}
    listed = (await c.get("/api/v1/schedules", headers=viewer)).json()
    assert _settable(listed[0]) == {**CREATED, "every": None}
    stored = await env.app.schedules.aget("all-fields")
    assert stored is not None and stored.misfire_grace == 12.5

    patched = await c.patch("/api/v1/schedules/all-fields", headers=admin, json=PATCHED)
    assert patched.status_code == 200, patched.text
    assert _settable(patched.json()) == PATCHED
    assert _settable((await c.get("/api/v1/schedules/all-fields", headers=viewer)).json()) == PATCHED

    # Every field whose default is None clears with null (but `every`: one timing must stay).
    cleared_fields = [name for name in NULLABLE_FIELDS if name not in ("cron", "every")]
    assert "misfire_grace" in cleared_fields
    cleared = await c.patch(
        "/api/v1/schedules/all-fields", headers=admin, json=dict.fromkeys(cleared_fields)
    )
    assert cleared.status_code == 200, cleared.text
    assert all(cleared.json()[name] is None for name in cleared_fields)
    stored = await env.app.schedules.aget("all-fields")
    assert stored is not None and stored.misfire_grace is None and stored.every == 90.0


async def test_misfire_grace_is_validated(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    body = {"name": "graceful", "task": "math.add", "every": 60, "payload": {"a": 1, "b": 2}}
    for bad in (-1, "5", True):
        refused = await c.post("/api/v1/schedules", headers=admin, json={**body, "misfire_grace": bad})
        assert refused.status_code == 422, (bad, refused.text)
    assert await env.app.schedules.aget("graceful") is None
    created = await c.post("/api/v1/schedules", headers=admin, json={**body, "misfire_grace": 3})
    assert created.status_code == 201 and created.json()["misfire_grace"] == 3.0
    refused = await c.patch("/api/v1/schedules/graceful", headers=admin, json={"misfire_grace": -0.5})
    assert refused.status_code == 422
    for name in SETTABLE_FIELDS:
        if name not in NULLABLE_FIELDS:
            null = await c.patch("/api/v1/schedules/graceful", headers=admin, json={name: None})
            assert null.status_code == 422, (name, null.text)
    got = await env.app.schedules.aget("graceful")
    assert got is not None and got.misfire_grace == 3.0
