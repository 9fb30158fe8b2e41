"""Issue 10, item 6: on Redis, schedule names and owners that look like internal keys (`due`,
`owner:<owner>` beside an owner) are ordinary names over HTTP: 2xx, readable, never a 500."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from tests.security.conftest import Server
from tests.support.redis import delete_prefix, with_prefix
from tests.support.servers import REDIS_URL, unavailable


@pytest.fixture
def redis_backend() -> Iterator[str]:
    """A `TASKYARD_BACKEND` URL on the shared Redis with a key prefix of this test's own."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.ConnectionError, OSError) as exc:
        unavailable(f"Redis at {REDIS_URL}", str(exc))
    prefix = f"ty:{os.urandom(6).hex()}:"
    try:
        yield with_prefix(REDIS_URL, prefix)
    finally:
        asyncio.run(delete_prefix(REDIS_URL, prefix))


def ok(response: httpx.Response) -> httpx.Response:
    assert 200 <= response.status_code < 300, (response.status_code, response.text)
    return response


def names(response: httpx.Response) -> list[str]:
    return [s["name"] for s in ok(response).json()]


def test_schedules_named_like_internal_keys_are_ordinary_on_redis(
    start_server: Callable[..., object], redis_backend: str
) -> None:
    with start_server(env={"TASKYARD_BACKEND": redis_backend}) as server:  # type: ignore[attr-defined]
        assert isinstance(server, Server)
        with server.client(headers=server.admin()) as http:
            every = {"task": "sec.echo", "every": 3600}
            ok(http.post("/api/v1/schedules", json={"name": "due", "owner": "team", **every}))
            ok(http.post("/api/v1/schedules", json={"name": "owner:team", "owner": "other", **every}))
            ok(http.post("/api/v1/schedules", json={"name": "plain", "owner": "team", **every}))

            assert ok(http.get("/api/v1/schedules/due")).json()["owner"] == "team"
            assert ok(http.get("/api/v1/schedules/owner:team")).json()["owner"] == "other"
            assert names(http.get("/api/v1/schedules", params={"owner": "team"})) == ["due", "plain"]
            assert names(http.get("/api/v1/schedules", params={"owner": "other"})) == ["owner:team"]
            assert names(http.get("/api/v1/schedules")) == ["due", "owner:team", "plain", "sec-nightly"]

            assert ok(http.post("/api/v1/schedules/due/pause")).json()["enabled"] is False
            assert ok(http.post("/api/v1/schedules/due/resume")).json()["enabled"] is True
            assert ok(http.post("/api/v1/schedules/owner:team/trigger")).status_code == 201
            ok(http.patch("/api/v1/schedules/owner:team", json={"every": 60}))
            assert ok(http.get("/api/v1/schedules/owner:team")).json()["every"] == 60

            assert ok(http.delete("/api/v1/schedules/owners/team")).json() == {"removed": 2}
            assert http.get("/api/v1/schedules/due").status_code == 404
            assert names(http.get("/api/v1/schedules", params={"owner": "other"})) == ["owner:team"]
            assert ok(http.delete("/api/v1/schedules/owner:team")).json() == {"removed": 1}
            assert names(http.get("/api/v1/schedules")) == ["sec-nightly"]
        assert "Traceback" not in server.logs()
