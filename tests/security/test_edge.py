"""Probes of the request guard and the API documents (issue 10, items 2, 7 and duplicate JSON
keys) against a real `taskyard run` process: a forged Host (DNS rebinding), cross-site form
posts with authentication off, non-JSON API writes, Swagger UI without a CDN behind auth and
CSP, and request bodies that name a key twice.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.security.conftest import Server

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


def _paused(server: Server, http: httpx.Client, headers: dict[str, str] | None = None) -> bool:
    answer = http.get("/api/v1/queues/default", headers=headers or {})
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["paused"])


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def _csrf(http: httpx.Client) -> str:
    page = http.get("/queues")
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, "the queues page has no action form"
    return found.group(1)


# -- Host (DNS rebinding) -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost.evil.example:{port}", "127.0.0.1:1"])
def test_a_forged_host_is_refused_with_auth_off(unsecured: Server, host: str) -> None:
    with unsecured.client() as http:
        forged = {"Host": host.format(port=unsecured.port)}
        for path in ("/api/v1/queues", "/", "/metrics", "/health"):
            response = http.get(path, headers=forged)
            assert response.status_code == 421, (path, response.text)
            assert _code(response) == "unknown_host"
        assert http.post("/api/v1/queues/default/pause", headers=forged).status_code == 421
        assert not _paused(unsecured, http)


def test_a_forged_host_is_refused_with_auth_on(secured: Server) -> None:
    with secured.client() as http:
        response = http.get("/api/v1/queues", headers={**secured.admin(), "Host": f"evil.example:{secured.port}"})
        assert response.status_code == 421 and _code(response) == "unknown_host"


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}"])
def test_the_loopback_names_are_answered(unsecured: Server, host: str) -> None:
    with unsecured.client() as http:
        assert http.get("/api/v1/queues", headers={"Host": host.format(port=unsecured.port)}).status_code == 200


def test_allowed_hosts_adds_names(start_server) -> None:
    env = {"TASKYARD_HTTP__ALLOWED_HOSTS": '["tasks.example.com", "other.example:8443"]'}
    with start_server(auth=False, env=env) as server, server.client() as http:
        assert http.get("/api/v1/queues", headers={"Host": "tasks.example.com"}).status_code == 200
        assert http.get("/api/v1/queues", headers={"Host": "other.example:8443"}).status_code == 200
        assert http.get("/api/v1/queues", headers={"Host": "other.example:8444"}).status_code == 421
        assert http.get("/api/v1/queues", headers={"Host": "evil.example"}).status_code == 421


# -- cross-site writes with authentication off ----------------------------------------------------


def test_a_cross_site_form_post_to_the_api_changes_nothing(unsecured: Server) -> None:
    with unsecured.client() as http:
        for headers in (
            {**FORM, "Origin": "http://evil.example"},
            {**FORM, "Origin": "null"},
            {**FORM, "Sec-Fetch-Site": "cross-site"},
            {**JSON, "Origin": "http://evil.example"},
            {"Sec-Fetch-Site": "same-site"},
        ):
            response = http.post("/api/v1/queues/default/pause", headers=headers, content=b"x=1" if FORM["Content-Type"] in headers.values() else b"")
            assert response.status_code == 403, (headers, response.text)
            assert _code(response) == "cross_site"
        assert not _paused(unsecured, http)


def test_a_form_post_to_the_api_is_refused_even_without_origin(unsecured: Server) -> None:
    # An HTML form can only send form types; the API takes JSON or nothing.
    with unsecured.client() as http:
        for content_type in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"):
            for body in (b"", b"x=1"):
                response = http.post("/api/v1/queues/default/pause", headers={"Content-Type": content_type}, content=body)
                assert response.status_code == 415, (content_type, body, response.text)
                assert _code(response) == "unsupported_media_type"
        response = http.post("/api/v1/jobs", content=b'{"task": "sec.echo", "payload": {}}')
        assert response.status_code == 415  # a body without a content type
        assert not _paused(unsecured, http)
        assert http.get("/api/v1/jobs").json()["jobs"] == []


def test_a_cross_site_form_post_to_the_dashboard_changes_nothing(unsecured: Server) -> None:
    with unsecured.client() as http:
        csrf = _csrf(http)  # even with the right token (a rebinding page could read one)
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
            response = http.post("/queues/default/pause", headers={**FORM, **headers}, data={"csrf": csrf})
            assert response.status_code == 403, (headers, response.text)
            assert _code(response) == "cross_site"
        assert not _paused(unsecured, http)


def test_same_origin_requests_work(unsecured: Server) -> None:
    origin = {"Origin": unsecured.url, "Sec-Fetch-Site": "same-origin"}
    with unsecured.client() as http:
        # The dashboard's own form.
        response = http.post("/queues/default/pause", headers=origin, data={"csrf": _csrf(http), "next": "/queues"})
        assert response.status_code == 303, response.text
        assert _paused(unsecured, http)
        # A same-origin fetch of the API, and a client without browser headers (CLI, httpx).
        assert http.post("/api/v1/queues/default/resume", headers={**origin, **JSON}).status_code == 200
        assert not _paused(unsecured, http)
        assert http.post("/api/v1/queues/default/pause").status_code == 200
        assert http.post("/api/v1/queues/default/resume").status_code == 200
        created = http.post("/api/v1/jobs", headers=origin, json={"task": "sec.echo", "payload": {"n": 1}})
        assert created.status_code == 201, created.text


def test_the_guard_holds_with_auth_on(secured: Server) -> None:
    with secured.client() as http:
        headers = {**secured.admin(), **FORM, "Origin": "http://evil.example"}
        response = http.post("/api/v1/queues/default/pause", headers=headers, content=b"x=1")
        assert response.status_code == 403 and _code(response) == "cross_site"
        assert not _paused(secured, http, secured.viewer())


# -- Swagger UI and the OpenAPI document ----------------------------------------------------------


def test_api_documents_need_credentials(secured: Server) -> None:
    with secured.client() as http:
        for path in ("/api/v1/docs", "/api/v1/openapi.json"):
            assert http.get(path).status_code == 401, path
            assert http.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401, path
            assert http.get(path, headers=secured.viewer()).status_code == 200, path
        assert "/api/v1/jobs" in http.get("/api/v1/openapi.json", headers=secured.viewer()).json()["paths"]


def test_api_documents_accept_the_dashboard_session(secured: Server) -> None:
    with secured.client() as http:
        login = http.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf is not None
        signed_in = http.post("/login", headers={"Origin": secured.url},
                              data={"csrf": csrf.group(1), "token": secured.viewer_key, "next": "/"})
        assert signed_in.status_code == 303, signed_in.text
        assert http.get("/api/v1/docs").status_code == 200
        assert http.get("/api/v1/openapi.json").status_code == 200


def test_swagger_ui_loads_nothing_from_elsewhere(secured: Server) -> None:
    with secured.client() as http:
        page = http.get("/api/v1/docs", headers=secured.viewer())
        assert page.status_code == 200
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        urls = [u for u in re.findall(r'(?:src|href)="([^"]+)"', page.text) if u != "data:,"]
        assert urls and all(u.startswith("/api/v1/docs/") for u in urls), urls
        assert "<script>" not in page.text  # no inline script: the CSP would block it
        for url in urls:
            asset = http.get(url)
            assert asset.status_code == 200 and asset.content, url
            assert asset.headers["X-Content-Type-Options"] == "nosniff"
        # Only the files the page loads, nothing else of the package.
        assert http.get("/api/v1/docs/redoc.standalone.js").status_code == 404


# -- duplicate JSON keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b'{"task": "sec.echo", "task": "sec.other", "payload": {}}',
    b'{"task": "sec.echo", "payload": {"a": {"task": 1, "task": 2}}}',
    b'{"task": "sec.echo", "payload": [{"x": 1}, {"x": 1, "x": 2}]}',
], ids=["top", "nested", "in a list"])
def test_duplicate_keys_are_refused_on_enqueue(secured: Server, body: bytes) -> None:
    with secured.client() as http:
        response = http.post("/api/v1/jobs", headers={**secured.admin(), **JSON}, content=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert "appears twice" in error["details"][0]["msg"] and ("'task'" in error["details"][0]["msg"] or "'x'" in error["details"][0]["msg"])
        assert http.get("/api/v1/jobs", headers=secured.viewer()).json()["jobs"] == []


def test_duplicate_keys_are_refused_on_schedule_creation(secured: Server) -> None:
    body = b'{"name": "dup", "task": "sec.echo", "every": 60, "every": 1}'
    with secured.client() as http:
        response = http.post("/api/v1/schedules", headers={**secured.admin(), **JSON}, content=body)
        assert response.status_code == 422, response.text
        assert "'every' appears twice" in response.json()["error"]["details"][0]["msg"]
        assert http.get("/api/v1/schedules/dup", headers=secured.viewer()).status_code == 404
        fine = http.post("/api/v1/schedules", headers=secured.admin(),
                         json={"name": "dup", "task": "sec.echo", "every": 60, "payload": {"every": 1}})
        assert fine.status_code == 201, fine.text
