"""`RequestGuard`: the checks every request passes before any route, with or without
authentication — the Host it names (DNS rebinding), where a state-changing request comes from
(cross-site forms and fetches), and that state-changing API requests carry JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from taskyard.http.auth import is_loopback

__all__ = ("LOOPBACK_NAMES", "PROBE_PATHS", "HostNames", "RequestGuard", "route_path")

#: The names a loopback-bound server answers to (with its port).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
#: Probe paths (kubelet, Prometheus) that name the pod IP as Host; see `RequestGuard`.
PROBE_PATHS = frozenset({"/health", "/ready", "/health/services", "/metrics"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The content types an HTML form (or a no-preflight cross-site fetch) can send.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
_WILDCARD_BINDS = ("0.0.0.0", "::", "[::]", "")  # noqa: S104 - recognised, never bound here
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _bracketed(host: str) -> str:
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class HostNames:
    """The Host headers a server answers to: `own` names at the server's own port, `any_port`
    names at any port, `exact` `name:port` pairs; `anything` allows any Host."""

    own: frozenset[str] = frozenset()
    any_port: frozenset[str] = frozenset()
    exact: frozenset[str] = frozenset()
    anything: bool = False

    @classmethod
    def for_bind(cls, bind_host: str, allowed_hosts: Iterable[str]) -> HostNames:
        """Loopback binds answer to the loopback names and the bound address; a wildcard bind
        (`0.0.0.0`, `::`) to any name unless `http.allowed_hosts` lists some (then to those and
        loopback); any other bind to its own address. `http.allowed_hosts` adds `name` (any
        port) or `name:port` entries; `*` allows any Host."""
        extra = [h.lower() for h in allowed_hosts]
        if "*" in extra:
            return cls(anything=True)
        if bind_host.strip() in _WILDCARD_BINDS:
            if not extra:
                # Authentication is mandatory off loopback, so a rebound name gains nothing.
                return cls(anything=True)
            own = frozenset(LOOPBACK_NAMES)
        elif is_loopback(bind_host):
            own = frozenset([*LOOPBACK_NAMES, _bracketed(bind_host)])
        else:
            own = frozenset([_bracketed(bind_host)])
        entries = [parts for parts in map(_split_host, extra) if parts is not None]
        return cls(
            own=own,
            any_port=frozenset(name for name, port in entries if port is None),
            exact=frozenset(f"{name}:{port}" for name, port in entries if port is not None),
        )

    def allows(self, host: str | None, *, server_port: int | None, default_port: int) -> bool:
        """True when `host` (a Host header) names this server."""
        if self.anything:
            return True
        parts = _split_host(host) if host else None
        if parts is None:
            return False
        name, port = parts
        if name in self.any_port or (port is not None and f"{name}:{port}" in self.exact):
            return True
        # The built-in names only at the port this connection came in on.
        return name in self.own and (server_port is None or (port or default_port) == server_port)


def _split_host(value: str) -> tuple[str, int | None] | None:
    """`name[:port]` → (name, port); None when it is not a host."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@ ?#\\"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
    else:
        name, colon, port_text = value.partition(":")
        rest = colon + port_text
    if not rest:
        return name, None
    if not rest.startswith(":") or not rest[1:].isdigit():
        return None
    return name, int(rest[1:])


class RequestGuard:
    """Pure ASGI middleware in front of every route:

    - **Host** (421): the request must name a host the server may be reached by
      (`HostNames`); a `name` without a port in `http.allowed_hosts` matches any port,
      the built-in names only the server's own port. This defeats DNS rebinding, where a page
      on `evil.example` resolves that name to 127.0.0.1 and reads a server without
      authentication. The probe paths (`PROBE_PATHS`) skip the check when the server is not
      bound to loopback: probes name the pod IP, and anyone who can reach the port reads them
      anyway.
    - **Origin** (403): POST/PUT/PATCH/DELETE must not come cross-site —
      `Sec-Fetch-Site: cross-site|same-site`, or an `Origin` (including `null`) whose host:port
      differs from the request's Host. Clients without these headers (the CLI, httpx, curl)
      are not browsers and pass.
    - **JSON** (415): POST/PUT/PATCH/DELETE under `/api/` with a body must say
      `Content-Type: application/json`; a bodiless one must not carry a form content type.
      The dashboard's forms are outside `/api/` and carry CSRF tokens.
    """

    def __init__(self, app: Any, *, bind_host: str, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.hosts = HostNames.for_bind(bind_host, allowed_hosts)
        self.probes_checked = is_loopback(bind_host)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal({**scope, "path": route_path(scope)}, _headers(scope))
        if refusal is not None:
            await _refuse(send, *refusal)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict[str, Any], headers: dict[str, str]) -> tuple[int, str, str] | None:
        host = headers.get("host")
        probe = scope["path"] in PROBE_PATHS and not self.probes_checked
        if not probe and not self.hosts.allows(
            host, server_port=_server_port(scope), default_port=_DEFAULT_PORTS.get(scope.get("scheme", ""), 80)
        ):
            message = (
                f"this server is not reached by the name {host!r}: add it to http.allowed_hosts "
                "(behind a proxy, the public name)" if host else "the request names no Host"
            )
            return 421, "unknown_host", message
        if scope["method"] not in STATE_CHANGING:
            return None
        site = headers.get("sec-fetch-site")
        if site in ("cross-site", "same-site"):
            return 403, "cross_site", f"refusing a {scope['method']} from another site (Sec-Fetch-Site: {site})"
        origin = headers.get("origin")
        if origin is not None and not _same_authority(origin, host or ""):
            return 403, "cross_site", f"refusing a {scope['method']} from another origin ({origin!r})"
        if scope["path"].startswith("/api/"):
            return _json_refusal(headers)
        return None


def route_path(scope: dict[str, Any]) -> str:
    """The request's path below the prefix the app is served under (the ASGI `root_path`,
    which a mount or uvicorn `--root-path` puts in front of `path` too): `/api/v1/jobs` for
    `/ops/api/v1/jobs` when the app is mounted at `/ops`."""
    path, root = str(scope["path"]), str(scope.get("root_path", "")).rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    # A repeated header keeps its first value; Host and Origin are single-valued.
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _server_port(scope: dict[str, Any]) -> int | None:
    server = scope.get("server")
    return int(server[1]) if server and server[1] is not None else None


def _same_authority(origin: str, host: str) -> bool:
    """The Origin's host:port equals the Host header's (default ports left out by both)."""
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # `null` (sandboxed frames, file: pages) and anything odd
    default = f":{_DEFAULT_PORTS[parts.scheme]}"
    return parts.netloc.removesuffix(default) == host.strip().lower().removesuffix(default)


def _json_refusal(headers: dict[str, str]) -> tuple[int, str, str] | None:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    has_body = headers.get("content-length", "0").strip() not in ("0", "") or "transfer-encoding" in headers
    is_json = content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )
    if has_body and not is_json:
        return (415, "unsupported_media_type",
                f"the body must be JSON (Content-Type: application/json), not {content_type or 'untyped'}")
    if not has_body and content_type in FORM_TYPES:
        return 415, "unsupported_media_type", f"API actions do not take {content_type}; send JSON or no body"
    return None


async def _refuse(send: Any, status: int, code: str, message: str) -> None:
    # The same shape as every API error (taskyard.http.api.errors).
    body = json.dumps({"error": {"code": code, "message": message, "details": None}}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
