"""The API's own documents: `/api/v1/openapi.json` and Swagger UI at `/api/v1/docs`, its files
read from the `fastapi-offline` package (no CDN), behind the API's authentication (a bearer token
or a dashboard session, any role) and the dashboard's Content-Security-Policy.

Under a prefix (the ASGI `root_path`: `taskyard.http.asgi.mount`, or a proxy and uvicorn
`--root-path`) the page's URLs start with it, and the document names it as its server, so
clients and Swagger UI call `{prefix}/api/v1/...`.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from taskyard.http.api.access import client_address
from taskyard.http.api.errors import error_response
from taskyard.http.auth import AuthError, TooManyFailures, shared_authenticator
from taskyard.http.context import HttpContext
from taskyard.http.dashboard.render import SECURITY_HEADERS

__all__ = ("DOCS_PATH", "OPENAPI_PATH", "build_router")

OPENAPI_PATH = "/api/v1/openapi.json"
DOCS_PATH = "/api/v1/docs"
#: Swagger UI 5 (OpenAPI 3.1, which FastAPI writes), as the package ships it.
SWAGGER_UI = files("fastapi_offline") / "static"

# No inline script: the page loads this file, which reads the document's URL from the page.
_INIT_JS = b"""window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi"),
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>taskyard API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{docs}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="{docs}/swagger-ui-bundle.js"></script>
<script src="{docs}/init.js"></script>
</body>
</html>
"""

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def _assets() -> dict[str, tuple[bytes, str]]:
    """The files the page loads: name -> (bytes, content type), read once."""
    found = {
        name: ((SWAGGER_UI / name).read_bytes(), _TYPES["." + name.rpartition(".")[2]])
        for name in ("swagger-ui.css", "swagger-ui-bundle.js")
    }
    found["init.js"] = (_INIT_JS, _TYPES[".js"])
    return found


def build_router(ctx: HttpContext, openapi: Callable[[], dict[str, Any]]) -> APIRouter:
    """The document, the page and its assets (kept out of the document itself). `openapi`
    returns the OpenAPI document (the FastAPI app's)."""
    auth = shared_authenticator(ctx)
    book = ctx.session_book()
    assets = _assets()
    router = APIRouter(include_in_schema=False)

    def root_of(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def refusal(request: Request) -> Response | None:
        """None when the caller may read the API: any role, by bearer token or dashboard session."""
        if not auth.enabled:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            try:
                auth.authenticate_client(token.strip(), client_address(request))
            except AuthError as exc:
                refused = error_response(exc.status_code, exc.code, str(exc))
                if isinstance(exc, TooManyFailures):
                    refused.headers["Retry-After"] = str(exc.retry_after)
                return refused
            return None
        if book.read(request) is not None:
            return None
        return error_response(
            401, "unauthorized",
            f"sign in on the dashboard ({root_of(request)}/login) or send Authorization: Bearer <token>",
        )

    @router.get(OPENAPI_PATH)
    async def openapi_document(request: Request) -> Response:
        refused = refusal(request)
        if refused is not None:
            return refused
        document = openapi()
        root = root_of(request)
        if root:  # the paths are the sub-app's; its server is the prefix (a copy: FastAPI caches the document)
            document = {**document, "servers": [{"url": root}]}
        return JSONResponse(document, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @router.get(DOCS_PATH)
    async def docs_page(request: Request) -> Response:
        refused = refusal(request)
        if refused is not None:
            return refused
        root = html.escape(root_of(request), quote=True)
        page = _PAGE.format(docs=root + DOCS_PATH, openapi=root + OPENAPI_PATH)
        return HTMLResponse(page, headers=SECURITY_HEADERS)

    @router.get(DOCS_PATH + "/{name}")
    async def docs_asset(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            return error_response(404, "not_found", "no such file")
        body, media_type = found
        return Response(body, media_type=media_type, headers={
            "Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})

    return router
