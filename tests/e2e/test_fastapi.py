"""A user's FastAPI app served by a real uvicorn process (examples/fastapi_app.py): its lifespan
opens and closes taskyard's backend, its routes enqueue, a `taskyard worker` runs the jobs, and
taskyard's management API answers under `/taskyard` — also to a client that
`openapi-python-client` generates from the mounted API's OpenAPI document.

And a user's app with the API and the dashboard mounted under `/ops` (tests/apps/ops_app.py):
every page loads, every URL in every page (links, forms, assets, the live stream) and every
redirect and cookie stays under `/ops/`, the API round-trips there, and Chromium clicks from
the overview to a job and cancels and retries it without one request outside `/ops/`."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import ROOT, stop_process
from tests.support.redis import free_port
from tests.support.waiting import wait_until_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@dataclass
class Served:
    """The example running under uvicorn."""

    base: str
    env: dict[str, str]
    headers: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(tmp_path, "examples.fastapi_app:api", "/taskyard")


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Served]:
    """A user's app (its own page at `/`) with taskyard's API and dashboard under `/ops`."""
    yield from _serve(tmp_path, "tests.apps.ops_app:api", "/ops")


def _serve(tmp_path: Path, target: str, prefix: str) -> Iterator[Served]:
    port, key = free_port(), secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
        "TASKYARD_BACKEND": f"sqlite:///{tmp_path / 'jobs.db'}",
        "TASKYARD_HTTP__PORT": str(port),
        "TASKYARD_HTTP__API_KEYS": json.dumps([{"key": key, "role": "admin", "name": "test"}]),
    }
    log = tmp_path / "uvicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"uvicorn exited {proc.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{base}{prefix}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until_sync(answers, timeout=60, what=f"uvicorn to serve {prefix}/health")
        yield Served(base, env, {"Authorization": f"Bearer {key}"}, proc, log)
    finally:
        if proc.poll() is None:
            stop_process(proc, signal.SIGTERM)


def _run_worker(served: Served, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taskyard", "--app", "examples.fastapi_app:app", "worker", "--burst"],
        cwd=cwd, env=served.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_users_routes_enqueue_and_the_mounted_api_reads(served: Served, tmp_path: Path) -> None:
    with httpx.Client(base_url=served.base, timeout=10) as http:
        answer = http.post("/signup", json={"email": "ada@example.com"})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]
        assert http.get(f"/signup/{job_id}").json() == {"status": "pending"}
        # The management API is under the prefix, behind taskyard's authentication.
        assert http.get(f"/taskyard/api/v1/jobs/{job_id}").status_code == 401
        job = http.get(f"/taskyard/api/v1/jobs/{job_id}", headers=served.headers)
        assert job.status_code == 200 and job.json()["task"] == "welcome.send"
        assert http.get(f"/api/v1/jobs/{job_id}", headers=served.headers).status_code == 404

        _run_worker(served, tmp_path)
        assert http.get(f"/signup/{job_id}").json() == {"status": "completed"}
        done = http.get(f"/taskyard/api/v1/jobs/{job_id}", headers=served.headers).json()
        assert done["status"] == "completed" and done["result"] == "welcomed ada@example.com"
    # The lifespan closed the backend: uvicorn ends cleanly, without asyncio's complaints.
    # (uvicorn re-raises the signal once it has shut down gracefully.)
    assert stop_process(served.proc, signal.SIGTERM) in (0, -signal.SIGTERM)
    output = served.log.read_text()
    assert "Application shutdown complete" in output
    assert "Task was destroyed" not in output and "Traceback" not in output, output


GENERATED_ROUND_TRIP = """
import sys
from taskyard_client import AuthenticatedClient
from taskyard_client.api.jobs import enqueue_job, get_job
from taskyard_client.models import EnqueueRequest

base, token = sys.argv[1], sys.argv[2]
with AuthenticatedClient(base_url=base, token=token) as client:
    body = EnqueueRequest.from_dict({"task": "welcome.send", "payload": {"email": "bob@example.com"}})
    created = enqueue_job.sync(client=client, body=body)
    fetched = get_job.sync(created.id, client=client)
    print(created.id, fetched.id, fetched.task, fetched.status)
"""


def test_a_generated_client_round_trips(served: Served, tmp_path: Path) -> None:
    document = httpx.get(served.base + "/taskyard/api/v1/openapi.json", headers=served.headers, timeout=10)
    assert document.status_code == 200
    (tmp_path / "openapi.json").write_text(document.text)
    generator = Path(sys.executable).parent / "openapi-python-client"
    done = subprocess.run(
        [str(generator), "generate", "--path", "openapi.json", "--meta", "none",
         "--output-path", "taskyard_client"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # Named after the operationIds, not FastAPI's defaults (enqueue_api_v1_jobs_post).
    assert (tmp_path / "taskyard_client" / "api" / "jobs" / "enqueue_job.py").is_file()
    run = subprocess.run(
        [sys.executable, "-c", GENERATED_ROUND_TRIP, served.base + "/taskyard", served.headers["Authorization"][7:]],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    created, fetched, task, status = run.stdout.split()
    assert created == fetched and task == "welcome.send" and status == "pending"


# -- the dashboard and the API under /ops -------------------------------------------------------

PREFIX = "/ops"
#: Attributes that hold a URL the page loads, links to, posts to or fetches.
URL_ATTRIBUTES = frozenset({"href", "src", "action", "data-count-url", "data-live-url", "data-openapi"})


class _Urls(HTMLParser):
    """Every URL-valued attribute of a page, as (tag, attribute, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value is not None:
                self.found.append((tag, name, value))


def urls_of(html: str) -> list[tuple[str, str, str]]:
    parser = _Urls()
    parser.feed(html)
    return parser.found


def _outside(found: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    # `data:,` is the docs page's empty icon: nothing is requested for it.
    return [u for u in found if not u[2].startswith(PREFIX + "/") and u[2] != "data:,"]


def _cookie_attributes(response: httpx.Response, name: str) -> dict[str, str]:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            parts = [p.strip() for p in header.split(";")[1:]]
            return {k.lower(): v for k, _, v in (p.partition("=") for p in parts)}
    raise AssertionError(f"no {name} cookie set: {response.headers.get_list('set-cookie')}")


def _login(http: httpx.Client, token: str) -> httpx.Response:
    form = http.get(PREFIX + "/login")
    assert form.status_code == 200, form.text
    assert not _outside(urls_of(form.text)), _outside(urls_of(form.text))
    assert _cookie_attributes(form, "taskyard_login")["path"] == PREFIX + "/login"
    csrf = next(v for t, a, v in _inputs(form.text) if a == "csrf")
    return http.post(PREFIX + "/login", data={"csrf": csrf, "token": token, "next": PREFIX + "/"})


def _inputs(html: str) -> list[tuple[str, str, str]]:
    """(tag, name, value) of every named input."""
    found: list[tuple[str, str, str]] = []

    class Inputs(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "input" and a.get("name"):
                found.append((tag, str(a["name"]), str(a.get("value") or "")))

    Inputs().feed(html)
    return found


def test_the_dashboard_and_the_api_live_under_the_prefix(ops: Served) -> None:
    token = ops.headers["Authorization"].removeprefix("Bearer ")
    with httpx.Client(base_url=ops.base, timeout=10) as http:
        # The user's own page keeps `/`; the prefix alone leads to the dashboard.
        assert http.get("/").text == "<h1>the shop</h1>"
        bare = http.get(PREFIX)
        assert bare.status_code in (307, 308) and httpx.URL(bare.headers["location"]).path == PREFIX + "/"
        first = http.get(PREFIX + "/queues?status=failed")
        assert first.status_code == 303
        assert first.headers["location"] == PREFIX + "/login?next=%2Fops%2Fqueues%3Fstatus%3Dfailed"

        # The API round-trips under the prefix; its document names the prefix as its server.
        enqueued = http.post(PREFIX + "/api/v1/jobs", headers=ops.headers,
                             json={"task": "welcome.send", "payload": {"email": "ada@example.com"}})
        assert enqueued.status_code == 201, enqueued.text
        pending = enqueued.json()["id"]
        got = http.get(f"{PREFIX}/api/v1/jobs/{pending}", headers=ops.headers)
        assert got.status_code == 200 and got.json()["payload"] == {"email": "ada@example.com"}
        listed = http.get(PREFIX + "/api/v1/jobs", headers=ops.headers, params={"queue": "emails"})
        assert pending in [j["id"] for j in listed.json()["jobs"]]
        cancelled = http.post(PREFIX + "/api/v1/jobs", headers=ops.headers,
                              json={"task": "welcome.send", "payload": {"email": "bob@example.com"}}).json()["id"]
        assert http.post(f"{PREFIX}/api/v1/jobs/{cancelled}/cancel", headers=ops.headers).status_code == 200
        made = http.post(PREFIX + "/api/v1/schedules", headers=ops.headers, json={
            "name": "nightly", "task": "welcome.send", "cron": "0 3 * * *", "payload": {"email": "c@d.e"}})
        assert made.status_code == 201, made.text
        document = http.get(PREFIX + "/api/v1/openapi.json", headers=ops.headers).json()
        assert document["servers"] == [{"url": PREFIX}]
        assert "/api/v1/jobs" in document["paths"] and "/api/v1/jobs/{job_id}" in document["paths"]
        # The API's checks see the path below the prefix: form-encoded writes are refused.
        form_write = http.post(PREFIX + "/api/v1/jobs", headers=ops.headers, data={"task": "welcome.send"})
        assert form_write.status_code == 415
        assert http.get("/api/v1/jobs", headers=ops.headers).status_code == 404

        signed_in = _login(http, token)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == PREFIX + "/"
        assert _cookie_attributes(signed_in, "taskyard_session")["path"] == PREFIX
        assert _cookie_attributes(signed_in, "taskyard_login")["path"] == PREFIX + "/login"

        pages = ["/", "/?range=24h&by=task", "/queues", "/jobs", "/jobs?queue=emails&status=pending",
                 f"/jobs/{pending}", f"/jobs/{cancelled}", "/schedules", "/services", "/workers", "/api/v1/docs"]
        assets: set[str] = set()
        for path in pages:
            page = http.get(PREFIX + path)
            assert page.status_code == 200, (path, page.status_code, page.text[:500])
            found = urls_of(page.text)
            assert found and not _outside(found), (path, _outside(found))
            assets |= {v for t, a, v in found if t in ("script", "link") and v != "data:,"}
            assert all(v.startswith(PREFIX + "/") for t, a, v in _inputs(page.text) if a == "next"), path
        assert {PREFIX + "/static/dashboard.css", PREFIX + "/static/dashboard.js",
                PREFIX + "/api/v1/docs/init.js"} <= assets
        for asset in assets:
            assert http.get(asset).status_code == 200, asset
        # The live stream the pages point at answers under the prefix.
        with http.stream("GET", f"{PREFIX}/live?jobs={pending}") as live:
            assert live.status_code == 200 and live.headers["content-type"].startswith("text/event-stream")
        # The bulk view's count and a not-found page too.
        assert http.get(PREFIX + "/jobs/count?queue=emails").json()["count"] == 2
        missing = http.get(PREFIX + "/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")
        assert missing.status_code == 404 and not _outside(urls_of(missing.text))

        # A form action: its redirect and the page's `next` stay under the prefix.
        job_page = http.get(f"{PREFIX}/jobs/{pending}").text
        csrf = next(v for t, a, v in _inputs(job_page) if a == "csrf")
        acted = http.post(f"{PREFIX}/jobs/{pending}/cancel", data={"csrf": csrf, "next": f"{PREFIX}/jobs/{pending}"})
        assert acted.status_code == 303 and acted.headers["location"] == f"{PREFIX}/jobs/{pending}?done=cancel"
        assert http.get(f"{PREFIX}/api/v1/jobs/{pending}", headers=ops.headers).json()["status"] == "cancelled"
        # A `next` outside the prefix is not followed.
        away = http.post(f"{PREFIX}/jobs/{pending}/retry", data={"csrf": csrf, "next": "/elsewhere"})
        assert away.status_code == 303 and away.headers["location"] == f"{PREFIX}/jobs?done=retry"
        bulk = http.post(PREFIX + "/jobs/bulk", data={"csrf": csrf, "action": "cancel", "scope": "ids", "ids": pending})
        assert bulk.status_code == 303 and bulk.headers["location"].startswith(PREFIX + "/jobs?")
        tidy = http.post(PREFIX + "/queues/emails/clean", data={"csrf": csrf, "hours": "1"})
        assert tidy.status_code == 303 and tidy.headers["location"].startswith(PREFIX + "/queues?done=clean")

        out = http.post(PREFIX + "/logout", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"] == PREFIX + "/login"
        assert _cookie_attributes(out, "taskyard_session")["path"] == PREFIX
        assert http.get(PREFIX + "/").headers["location"] == PREFIX + "/login"


async def test_a_browser_stays_under_the_prefix(ops: Served, browser: Any) -> None:
    """Chromium: sign in, overview → the queue's jobs → a job, cancel it and retry it; every
    request the page makes (documents, assets, the live stream, refreshes) is under /ops/."""
    token = ops.headers["Authorization"].removeprefix("Bearer ")
    job_id = httpx.post(ops.base + PREFIX + "/api/v1/jobs", headers=ops.headers, timeout=10,
                        json={"task": "welcome.send", "payload": {"email": "ada@example.com"}}).json()["id"]
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    wait = 20_000

    await page.goto(ops.base + PREFIX + "/")
    await page.wait_for_url(ops.base + PREFIX + "/login")
    await page.fill("#token", token)
    await page.click("#login")
    await page.wait_for_url(ops.base + PREFIX + "/")
    await page.wait_for_selector("body[data-live='on']", timeout=wait)  # the SSE stream connected

    await page.click("tr[data-queue='emails'] td a[href^='/ops/jobs?queue=emails']")
    await page.wait_for_url(f"{ops.base}{PREFIX}/jobs?queue=emails")
    await page.click(f"a[href='{PREFIX}/jobs/{job_id}']")
    await page.wait_for_url(f"{ops.base}{PREFIX}/jobs/{job_id}")
    assert await page.text_content("h1 .status") == "pending"

    await page.click("button[data-action='cancel']")
    await page.wait_for_selector("p.notice", timeout=wait)
    assert "Cancelled." in await page.text_content("p.notice")
    assert await page.text_content("h1 .status") == "cancelled"
    await page.click("button[data-action='retry']")
    await page.wait_for_selector("h1 .st-pending", timeout=wait)
    assert "Sent back to pending." in await page.text_content("p.notice")
    assert page.url.startswith(f"{ops.base}{PREFIX}/jobs/{job_id}")
    got = httpx.get(f"{ops.base}{PREFIX}/api/v1/jobs/{job_id}", headers=ops.headers, timeout=10).json()
    assert got["status"] == "pending"
    await page.wait_for_selector("body[data-live='on']", timeout=wait)
    await context.close()

    outside = [u for u in requested if not u.startswith(ops.base + PREFIX + "/")]
    assert requested and not outside, outside
    assert any(u.startswith(f"{ops.base}{PREFIX}/live") for u in requested)
    assert any(u == f"{ops.base}{PREFIX}/static/dashboard.js" for u in requested)
