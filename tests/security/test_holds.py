"""Probes of what already held when issue 10's outside probe ran, kept so none regresses:
forged tokens, the viewer role on every mutating route, cross-site dashboard posts, script
injection into every dashboard page, and oversized bodies. Each against a real `taskyard run`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from tests.security.conftest import Server
from tests.support.waiting import wait_until_sync

XSS = ['<script>alert("xss")</script>', '"><img src=x onerror=alert(1)>', "'><svg onload=alert(2)>"]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def dashboard_login(server: Server, token: str) -> httpx.Client:
    """A client holding a dashboard session made from `token` through the real login form."""
    http = server.client()
    page = http.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    done = http.post("/login", data={"csrf": csrf.group(1), "token": token, "next": "/"},
                     headers={"Origin": server.url})
    assert done.status_code == 303 and done.headers["location"] == "/", done.text
    return http


def wait_for_status(http: httpx.Client, headers: dict[str, str], job_id: str, status: str) -> dict:
    def reached() -> dict | None:
        job: dict = http.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        return job if job["status"] == status else None

    found: dict = wait_until_sync(reached, timeout=20, what=f"job {job_id} to be {status}")
    return found


# -- forged tokens -----------------------------------------------------------------------------
def test_forged_tokens_are_refused(start_server: Callable[..., Any]) -> None:
    # A server of its own: the failures below throttle this client address (429 after 10).
    with start_server() as secured:
        assert secured.secret is not None
        now = int(time.time())
        claims = {"sub": "attacker", "role": "admin", "exp": now + 600}
        unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        wrong_secret = jwt.encode(claims, "another-secret-" + "Zq8#x" * 8, algorithm="HS256")
        expired = jwt.encode({**claims, "exp": now - 3600}, secret := secured.secret, algorithm="HS256")
        no_role = jwt.encode({"sub": "attacker", "exp": now + 600}, secret, algorithm="HS256")
        bad_role = jwt.encode({**claims, "role": "root"}, secret, algorithm="HS256")
        other_alg = jwt.encode(claims, secret, algorithm="HS512")
        valid = secured.admin()["Authorization"].removeprefix("Bearer ")
        head, body, sig = valid.split(".")
        promoted = f"{head}.{_b64({**json.loads(base64.urlsafe_b64decode(body + '==')), 'sub': 'x'})}.{sig}"
        forged = [unsigned, wrong_secret, expired, no_role, bad_role, other_alg, promoted,
                  "x", "Bearer", (secured.admin_key or "") + "x", "a.b.c"]
        with secured.client() as http:
            statuses = [
                http.post("/api/v1/queues/default/pause", headers={"Authorization": f"Bearer {token}"}).status_code
                for token in forged
            ]
            # Each is refused; past 10 failures the address is throttled (and stays refused).
            assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}, statuses
            assert http.post("/api/v1/queues/default/pause").status_code in (401, 429)
            assert http.get("/api/v1/queues/default", headers=secured.viewer()).status_code == 429
        logs = secured.logs()
        assert valid not in logs and (secured.admin_key or "-") not in logs
        assert all(token not in logs for token in forged if len(token) > 8)


# -- the viewer role -----------------------------------------------------------------------------
def test_viewer_is_refused_on_every_mutating_route(secured: Server) -> None:
    with secured.client() as http:
        admin = secured.admin()
        job = http.post("/api/v1/jobs", json={"task": "sec.echo", "payload": {"n": 1}}, headers=admin).json()
        spec = http.get("/api/v1/openapi.json", headers=admin).json()
        values = {"job_id": job["id"], "queue": "default", "name": "sec-nightly", "set_name": "nightly",
                  "owner": "team", "service_id": "worker", "service": "worker", "alert_id": "a1"}
        routes = [(method.upper(), path) for path, item in spec["paths"].items()
                  for method in item if method in ("post", "put", "patch", "delete")]
        assert len(routes) >= 15, routes
        viewers = [secured.viewer(), {"Authorization": f"Bearer {secured.viewer_key}"}]
        for method, path in routes:
            url = "/api/v1" + re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path.removeprefix("/api/v1"))
            for headers in viewers:
                reply = http.request(method, url, json={}, headers=headers)
                assert reply.status_code == 403, (method, url, reply.status_code, reply.text)
        # Nothing changed.
        assert http.get("/api/v1/queues/default", headers=admin).json()["paused"] is False
        assert http.get("/api/v1/schedules/sec-nightly", headers=admin).status_code == 200
        assert http.get(f"/api/v1/jobs/{job['id']}", headers=admin).json()["status"] != "cancelled"


# -- the dashboard -------------------------------------------------------------------------------
def test_cross_site_dashboard_posts_are_refused(secured: Server) -> None:
    http = dashboard_login(secured, secured.admin_key or "")
    with contextlib.closing(http):
        page = http.get("/queues")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf and "/queues/default/pause" in page.text
        attempts = [
            ({"Origin": "http://evil.example"}, {"csrf": csrf.group(1)}),
            ({"Sec-Fetch-Site": "cross-site"}, {"csrf": csrf.group(1)}),
            ({"Origin": "null"}, {"csrf": csrf.group(1)}),
            ({"Origin": secured.url}, {}),  # no CSRF token
            ({"Origin": secured.url}, {"csrf": "forged"}),
        ]
        for headers, form in attempts:
            reply = http.post("/queues/default/pause", data={**form, "next": "/queues"}, headers=headers)
            assert reply.status_code == 403, (headers, form, reply.status_code)
        assert "Pause" in http.get("/queues").text or "pause" in http.get("/queues").text
        assert http.get("/api/v1/queues/default", headers=secured.viewer()).json()["paused"] is False
        # The same form from the dashboard's own page works.
        reply = http.post("/queues/default/pause", data={"csrf": csrf.group(1), "next": "/queues"},
                          headers={"Origin": secured.url})
        assert reply.status_code == 303
        assert http.get("/api/v1/queues/default", headers=secured.viewer()).json()["paused"] is True
        http.post("/queues/default/resume", data={"csrf": csrf.group(1), "next": "/queues"},
                  headers={"Origin": secured.url})
        assert http.get("/api/v1/queues/default", headers=secured.viewer()).json()["paused"] is False


def test_script_text_is_escaped_on_every_page(secured: Server) -> None:
    admin = secured.admin()
    with secured.client() as api:
        done = api.post("/api/v1/jobs", json={"task": "sec.echo", "payload": {"x": XSS}}, headers=admin).json()
        failed = api.post("/api/v1/jobs", json={"task": "sec.fail", "payload": {"message": " ".join(XSS)}},
                          headers=admin).json()
        waiting = api.post("/api/v1/jobs", json={"task": "sec.echo", "payload": {"x": XSS}, "delay": 3600,
                                                 "unique_key": XSS[0]}, headers=admin).json()
        created = api.post("/api/v1/schedules", headers=admin, json={
            "name": "sec-xss", "task": "sec.echo", "cron": "0 4 * * *", "payload": {"x": XSS}})
        assert created.status_code == 201, created.text
        wait_for_status(api, admin, done["id"], "completed")
        wait_for_status(api, admin, failed["id"], "failed")
    pages = ["/", "/queues", "/jobs", "/jobs?status=failed", "/jobs?status=scheduled", "/schedules",
             "/services", "/workers", f"/jobs/{done['id']}", f"/jobs/{failed['id']}", f"/jobs/{waiting['id']}",
             "/jobs?task=" + XSS[0], "/jobs?cursor=" + XSS[1], "/no-such-page" + XSS[2]]
    http = dashboard_login(secured, secured.admin_key or "")
    with contextlib.closing(http):
        for path in pages:
            reply = http.get(path)
            assert reply.status_code in (200, 404), (path, reply.status_code)
            for text in XSS:
                assert text not in reply.text, (path, text)
            if reply.headers["content-type"].startswith("text/html"):
                assert "default-src" in reply.headers.get("content-security-policy", ""), path
        # The payload is on the job page, escaped.
        assert "&lt;script&gt;" in http.get(f"/jobs/{done['id']}").text
        login = httpx.get(secured.url + "/login?next=" + XSS[1])
        assert XSS[1] not in login.text


# -- limits ------------------------------------------------------------------------------------
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_ten_megabytes_are_refused_and_nothing_is_stored(secured: Server, declared: bool) -> None:
    admin = secured.admin()
    body = json.dumps({"task": "sec.echo", "payload": {"blob": "x" * 10_000_000}}).encode()
    with secured.client() as http:
        before = http.get("/api/v1/jobs", params={"task": "sec.echo", "limit": 200}, headers=admin).json()
        content = body if declared else iter([body[i:i + 65536] for i in range(0, len(body), 65536)])
        reply = http.post("/api/v1/jobs", content=content,
                          headers={**admin, "Content-Type": "application/json"})
        assert reply.status_code == 413, reply.text[:200]
        assert reply.json()["error"]["code"] == "payload_too_large"
        after = http.get("/api/v1/jobs", params={"task": "sec.echo", "limit": 200}, headers=admin).json()
        assert [j["id"] for j in after["jobs"]] == [j["id"] for j in before["jobs"]]
