"""Probes of issue 10, items 3 and 8, against a real `taskyard run` process.

3: a payload nested too deeply is refused (422) before anything is stored, through the HTTP
API and the CLI alike, and listings answer 200 even with such a row already in the store.
8: a name the HTTP API refuses is refused by the CLI and the configuration too.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from taskyard.backends.sqlite import SqliteBackend
from taskyard.core import ids
from taskyard.core.job import JobDraft
from taskyard.core.payload import MAX_PAYLOAD_DEPTH, TOO_DEEP
from tests.security.conftest import Server

BAD_NAME = "<script>alert(1)</script>"


def nested_text(depth: int) -> str:
    """JSON text of objects nested `depth` levels deep (written by hand: `json.dumps` of
    such a value needs as many Python frames)."""
    return '{"a":' * depth + "1" + "}" * depth


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def job_ids(http: httpx.Client, headers: dict[str, str]) -> set[str]:
    response = http.get("/api/v1/jobs", params={"limit": 500}, headers=headers)
    assert response.status_code == 200, response.text
    return {job["id"] for job in response.json()["jobs"]}


def schedule_names(http: httpx.Client, headers: dict[str, str]) -> set[str]:
    response = http.get("/api/v1/schedules", headers=headers)
    assert response.status_code == 200, response.text
    return {s["name"] for s in response.json()}


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """`taskyard ARGS` on the server's store and app, as an operator would run it."""
    return subprocess.run(
        [sys.executable, "-m", "taskyard", *args],
        cwd=server.workdir, env=server.env, capture_output=True, text=True, timeout=60,
    )


# -- item 3: payload depth and size ----------------------------------------------------------
@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH + 1, 300, 1000])
def test_deep_payload_is_refused_and_nothing_is_stored(secured: Server, depth: int) -> None:
    with secured.client() as http:
        before = job_ids(http, secured.admin())
        body = '{"task":"sec.echo","payload":' + nested_text(depth) + "}"
        response = http.post(
            "/api/v1/jobs", content=body,
            headers={**secured.admin(), "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert str(MAX_PAYLOAD_DEPTH) in response.text or "nested too deeply" in response.text
        assert job_ids(http, secured.admin()) == before


def test_payload_at_the_depth_limit_is_stored_and_listed(secured: Server) -> None:
    with secured.client() as http:
        response = http.post(
            "/api/v1/jobs", json={"task": "sec.echo", "payload": nested(MAX_PAYLOAD_DEPTH - 1)},
            headers=secured.admin(),
        )
        assert response.status_code == 201, response.text
        assert response.json()["id"] in job_ids(http, secured.admin())


def test_deep_schedule_payload_is_refused_and_nothing_is_stored(secured: Server) -> None:
    with secured.client() as http:
        before = schedule_names(http, secured.admin())
        body = (
            '{"name":"sec-deep","task":"sec.echo","every":60,"payload":' + nested_text(300) + "}"
        )
        response = http.post(
            "/api/v1/schedules", content=body,
            headers={**secured.admin(), "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert str(MAX_PAYLOAD_DEPTH) in response.text
        assert schedule_names(http, secured.admin()) == before


def test_cli_refuses_a_deep_payload_and_stores_nothing(secured: Server) -> None:
    with secured.client() as http:
        before = job_ids(http, secured.admin())
        for depth in (300, 1000):
            done = cli(secured, "enqueue", "sec.echo", nested_text(depth))
            assert done.returncode != 0, done.stdout
            assert str(MAX_PAYLOAD_DEPTH) in done.stderr + done.stdout
            assert "Traceback" not in done.stderr
        assert job_ids(http, secured.admin()) == before


@pytest.fixture
def deep_rows(unsecured: Server) -> Iterator[list[str]]:
    """Two jobs stored around the limits, straight through the backend (as a row written by an
    older version would be): a payload 300 levels deep (past pydantic's serialiser) and one
    1,000 levels deep (past Python's JSON parser), each with a result as deep. Their task is
    unknown to the server, so its worker leaves them pending."""
    depths = (300, 1000)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # this process must encode them
    try:
        backend = SqliteBackend(f"sqlite:///{unsecured.workdir / 'taskyard.db'}")

        async def store() -> list[str]:
            await backend.open()
            try:
                drafts = [
                    JobDraft(id=ids.new_id(), task="sec.deep-row", queue="default", payload=nested(d))
                    for d in depths
                ]
                return [job.id for job in await backend.job_enqueue_many(drafts=drafts)]
            finally:
                await backend.close()

        stored = asyncio.run(store())
    finally:
        sys.setrecursionlimit(limit)
    with sqlite3.connect(unsecured.workdir / "taskyard.db") as db:
        for job_id, depth in zip(stored, depths, strict=True):
            db.execute("UPDATE jobs SET result = ? WHERE id = ?", (nested_text(depth), job_id))
    yield stored


def test_listings_answer_with_deep_rows_already_stored(unsecured: Server, deep_rows: list[str]) -> None:
    with unsecured.client() as http:
        listing = http.get("/api/v1/jobs", params={"limit": 500})
        assert listing.status_code == 200, listing.text
        assert set(deep_rows) <= {job["id"] for job in listing.json()["jobs"]}
        filtered = http.get("/api/v1/jobs", params={"task": "sec.deep-row"})
        assert filtered.status_code == 200 and len(filtered.json()["jobs"]) == 2
        for job_id in deep_rows:
            one = http.get(f"/api/v1/jobs/{job_id}")
            assert one.status_code == 200, one.text
            assert TOO_DEEP in json.dumps(one.json(), ensure_ascii=False)
            page = http.get(f"/jobs/{job_id}")
            assert page.status_code == 200 and TOO_DEEP in page.text
        for path in ("/", "/jobs", "/queues", "/jobs?task=sec.deep-row"):
            assert http.get(path).status_code == 200, path


# -- item 8: one name rule ----------------------------------------------------------------------
def test_http_and_cli_refuse_the_same_queue_name(secured: Server) -> None:
    with secured.client() as http:
        before = job_ids(http, secured.admin())
        response = http.post(
            "/api/v1/jobs", json={"task": "sec.echo", "payload": {}, "queue": BAD_NAME},
            headers=secured.admin(),
        )
        assert response.status_code == 422
        done = cli(secured, "enqueue", "sec.echo", "{}", "--queue", BAD_NAME)
        assert done.returncode != 0
        assert "queue name" in done.stderr + done.stdout
        assert job_ids(http, secured.admin()) == before


def test_worker_refuses_a_queue_name_outside_the_rule(secured: Server) -> None:
    done = cli(secured, "worker", "--burst", "--no-maintenance", "--queues", f"default,{BAD_NAME}")
    assert done.returncode != 0
    assert "queue name" in done.stderr + done.stdout and "may contain only" in done.stderr + done.stdout
