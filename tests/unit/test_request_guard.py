"""`RequestGuard` and `HostNames` in-process: which Host headers each bind answers to, which
writes count as cross-site, and which API writes are not JSON."""

from __future__ import annotations

from typing import Any

import pytest

from taskyard.http.guard import HostNames, RequestGuard, route_path


def _allows(bind: str, allowed: list[str], host: str | None, port: int | None = 5050) -> bool:
    return HostNames.for_bind(bind, allowed).allows(host, server_port=port, default_port=80)


@pytest.mark.parametrize(("bind", "allowed", "host", "ok"), [
    ("127.0.0.1", [], "127.0.0.1:5050", True),
    ("127.0.0.1", [], "localhost:5050", True),
    ("127.0.0.1", [], "[::1]:5050", True),
    ("127.0.0.1", [], "127.0.0.1:5051", False),  # the built-in names only at our own port
    ("127.0.0.1", [], "127.0.0.1", False),  # port 80 implied
    ("127.0.0.1", [], "evil.example:5050", False),
    ("127.0.0.1", [], "localhost.evil.example:5050", False),
    ("127.0.0.1", [], "", False),
    ("127.0.0.1", [], None, False),
    ("127.0.0.1", [], "127.0.0.1:5050/x", False),
    ("127.0.0.1", [], "user@127.0.0.1:5050", False),
    ("127.0.0.1", ["tasks.example.com"], "tasks.example.com", True),
    ("127.0.0.1", ["tasks.example.com"], "Tasks.Example.com:8443", True),  # a bare name: any port
    ("127.0.0.1", ["tasks.example.com:8443"], "tasks.example.com:8443", True),
    ("127.0.0.1", ["tasks.example.com:8443"], "tasks.example.com", False),
    ("127.0.0.1", ["*"], "anything.example", True),
    ("::1", [], "[::1]:5050", True),
    ("::1", [], "localhost:5050", True),
    ("0.0.0.0", [], "evil.example", True),  # auth is mandatory off loopback
    ("::", [], "10.1.2.3:5050", True),
    ("0.0.0.0", ["tasks.example.com"], "tasks.example.com", True),
    ("0.0.0.0", ["tasks.example.com"], "localhost:5050", True),
    ("0.0.0.0", ["tasks.example.com"], "evil.example", False),
    ("10.1.2.3", [], "10.1.2.3:5050", True),
    ("10.1.2.3", [], "evil.example:5050", False),
])
def test_host_names(bind: str, allowed: list[str], host: str | None, ok: bool) -> None:
    assert _allows(bind, allowed, host) is ok


def test_without_a_known_server_port_any_port_of_our_names_passes() -> None:
    assert _allows("127.0.0.1", [], "localhost:1234", port=None)
    assert not _allows("127.0.0.1", [], "evil.example:1234", port=None)


async def _call(
    guard: RequestGuard, method: str, path: str, headers: dict[str, str], root_path: str = ""
) -> tuple[int, bool]:
    reached: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    guard.app = app
    scope = {
        "type": "http", "method": method, "path": root_path + path, "root_path": root_path, "scheme": "http",
        "server": ("127.0.0.1", 5050),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await guard(scope, receive, send)
    return sent[0]["status"], bool(reached)


HOST = {"Host": "127.0.0.1:5050"}


@pytest.mark.parametrize(("method", "path", "headers", "status"), [
    ("GET", "/api/v1/jobs", {"Origin": "http://evil.example"}, 200),  # reads are not writes
    ("POST", "/api/v1/queues/q/pause", {}, 200),  # the CLI, curl: no browser headers
    ("POST", "/api/v1/queues/q/pause", {"Origin": "http://127.0.0.1:5050"}, 200),
    ("POST", "/api/v1/queues/q/pause", {"Origin": "http://127.0.0.1:5051"}, 403),
    ("POST", "/api/v1/queues/q/pause", {"Origin": "http://localhost:5050"}, 403),
    ("POST", "/api/v1/queues/q/pause", {"Origin": "null"}, 403),
    ("DELETE", "/api/v1/schedules/s", {"Sec-Fetch-Site": "same-site"}, 403),
    ("POST", "/queues/q/pause", {"Sec-Fetch-Site": "cross-site"}, 403),
    ("POST", "/queues/q/pause", {"Sec-Fetch-Site": "same-origin"}, 200),
    ("POST", "/queues/q/pause", {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "3"}, 200),
    ("POST", "/api/v1/jobs", {"Content-Type": "application/json; charset=utf-8", "Content-Length": "2"}, 200),
    ("POST", "/api/v1/jobs", {"Content-Type": "text/plain", "Content-Length": "2"}, 415),
    ("POST", "/api/v1/jobs", {"Content-Length": "2"}, 415),
    ("POST", "/api/v1/jobs", {"Transfer-Encoding": "chunked"}, 415),
    ("PATCH", "/api/v1/queues/q", {"Content-Type": "application/merge-patch+json", "Content-Length": "2"}, 200),
    ("POST", "/api/v1/queues/q/pause", {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": "0"}, 415),
    ("POST", "/api/v1/queues/q/pause", {"Content-Type": "application/json", "Content-Length": "0"}, 200),
    ("GET", "/health", {"Host": "evil.example"}, 421),  # on loopback the probes are checked too
])
async def test_requests(method: str, path: str, headers: dict[str, str], status: int) -> None:
    guard = RequestGuard(None, bind_host="127.0.0.1")
    answered, reached = await _call(guard, method, path, {**HOST, **headers})
    assert (answered, reached) == (status, status == 200)


async def test_under_a_prefix_the_checks_read_the_path_below_it() -> None:
    """Mounted at `/ops` (the ASGI root_path, which Starlette also keeps in `path`), API writes
    must still be JSON and the probes are still probes."""
    guard = RequestGuard(None, bind_host="127.0.0.1")
    form = {**HOST, "Content-Type": "application/x-www-form-urlencoded", "Content-Length": "3"}
    assert await _call(guard, "POST", "/api/v1/jobs", form, root_path="/ops") == (415, False)
    assert await _call(guard, "POST", "/queues/q/pause", form, root_path="/ops") == (200, True)
    assert route_path({"path": "/ops/api/v1/jobs", "root_path": "/ops"}) == "/api/v1/jobs"
    assert route_path({"path": "/ops", "root_path": "/ops"}) == "/"
    assert route_path({"path": "/opsx/api/v1/jobs", "root_path": "/ops"}) == "/opsx/api/v1/jobs"
    assert route_path({"path": "/api/v1/jobs", "root_path": ""}) == "/api/v1/jobs"
    off_loopback = RequestGuard(None, bind_host="0.0.0.0", allowed_hosts=["shop.example"])
    assert await _call(off_loopback, "GET", "/health", {"Host": "10.1.2.3:5050"}, root_path="/ops") == (200, True)


async def test_behind_a_tls_proxy_the_origin_matches_the_public_name() -> None:
    guard = RequestGuard(None, bind_host="0.0.0.0", allowed_hosts=["tasks.example.com"])
    headers = {"Host": "tasks.example.com", "Origin": "https://tasks.example.com", "Content-Type": "application/json"}
    assert await _call(guard, "POST", "/api/v1/queues/q/pause", headers) == (200, True)
    headers["Origin"] = "https://tasks.example.com:443"
    assert await _call(guard, "POST", "/api/v1/queues/q/pause", headers) == (200, True)
    # Off loopback the probes answer to the pod IP; the API does not.
    assert await _call(guard, "GET", "/ready", {"Host": "10.1.2.3:5050"}) == (200, True)
    assert await _call(guard, "GET", "/api/v1/jobs", {"Host": "10.1.2.3:5050"}) == (421, False)


def test_allowed_hosts_setting() -> None:
    from pydantic import ValidationError

    from taskyard.config import HttpSettings

    assert HttpSettings(allowed_hosts="A.example, b.example:8443").allowed_hosts == ["a.example", "b.example:8443"]
    for bad in ("http://a.example", "a.example/path", ":8443"):
        with pytest.raises(ValidationError, match="not a host name"):
            HttpSettings(allowed_hosts=[bad])
