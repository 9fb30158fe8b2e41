"""Templates, filters and security headers of the dashboard's pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, Response

from taskyard.core.payload import bounded

__all__ = ("SECURITY_HEADERS", "STATIC", "Renderer", "ago", "iso")

HERE = Path(__file__).parent

#: Scripts and styles come only from this origin; no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
#: The static files, read once: name -> (bytes, content type). Nothing else is served.
STATIC = {
    p.name: (p.read_bytes(), _TYPES[p.suffix])
    for p in (HERE / "static").iterdir()
    if p.suffix in _TYPES
}


def _as_datetime(value: datetime | str | None) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else value or None


def iso(value: datetime | str | None) -> str:
    """`2026-11-22 06:30:00` (UTC), or empty."""
    value = _as_datetime(value)
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | str | None, now: datetime) -> str:
    """`12s ago`, `in 5m`, `3h ago`... or `—`."""
    value = _as_datetime(value)
    if value is None:
        return "—"
    seconds = (now - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= size or unit == "s":
            text = f"{int(seconds // size)}{unit}"
            break
    return f"in {text}" if future else f"{text} ago"


def pretty(value: Any) -> str:
    """JSON, indented, for payloads and results (rendered as escaped text); parts nested
    past the stored limit (rows written before it) are shown as `core.payload.TOO_DEEP`."""
    return json.dumps(bounded(value), indent=2, sort_keys=True, ensure_ascii=False, default=str)


class Renderer:
    """Renders a page template with the common context and security headers."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(iso=iso, ago=ago, pretty=pretty)

    def page(self, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        """An HTML response of `template`."""
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    @staticmethod
    def secure(response: Response) -> Response:
        """Add the security headers to a non-page response (redirects)."""
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        return response
