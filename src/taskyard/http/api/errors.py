"""API errors: one stable JSON shape `{"error": {"code", "message", "details"}}`, and the route
class that produces it (plus the request body size limit, 413) for every API route.
"""

from __future__ import annotations

import email.message
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from taskyard.errors import (
    BackendUnavailable,
    ConfigError,
    InvalidTransitionError,
    NotFoundError,
    PayloadError,
    ScheduleError,
    TaskyardError,
    UnknownTaskError,
)
from taskyard.http.auth import AuthError, TooManyFailures

__all__ = (
    "ERROR_RESPONSES",
    "ApiError",
    "ErrorBody",
    "ErrorResponse",
    "error_response",
    "limited_route_class",
)

log = logging.getLogger("taskyard.http.api")

#: Default request body limit (bytes) when the settings do not say.
DEFAULT_MAX_BODY = 1_048_576


class ErrorBody(BaseModel):
    """What went wrong: a stable machine `code`, a human `message`, optional `details`."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every error the API returns has this shape."""

    error: ErrorBody


#: The error statuses every API route may answer, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (401, "Missing or invalid bearer token"),
        (403, "The token's role may not do this"),
        (404, "Unknown id"),
        (409, "Not allowed in the current state"),
        (413, "Request body too large"),
        (415, "A write whose body is not JSON"),
        (422, "Invalid input; nothing was changed"),
        (503, "The backend is unavailable"),
    )
}


class ApiError(TaskyardError):
    """An error with an explicit HTTP status and code (raised by route handlers)."""

    def __init__(self, status_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.details = details


def error_response(status_code: int, code: str, message: str, details: Any = None) -> JSONResponse:
    """A JSON error in the stable shape."""
    headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status_code, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
}


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    # Only location, message and type: echoing the input could reflect secrets into logs.
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
        for e in errors
    ]


def convert(exc: Exception) -> JSONResponse | None:
    """The JSON error for a known exception, or None for an unexpected one."""
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, str(exc), exc.details)
    if isinstance(exc, TooManyFailures):
        response = error_response(exc.status_code, exc.code, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, AuthError):
        return error_response(exc.status_code, exc.code, str(exc))
    if isinstance(exc, RequestValidationError):
        return error_response(
            422, "validation_error", "invalid request", _validation_details(exc.errors())
        )
    if isinstance(exc, HTTPException):
        return error_response(
            exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail)
        )
    if isinstance(exc, UnknownTaskError):
        return error_response(422, "unknown_task", str(exc), {"field": "task"})
    if isinstance(exc, PayloadError):
        return error_response(422, "invalid_payload", str(exc), _validation_details(exc.errors))
    if isinstance(exc, ScheduleError):
        return error_response(422, "invalid_schedule", str(exc))
    if isinstance(exc, NotFoundError):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, InvalidTransitionError):
        return error_response(409, "invalid_transition", str(exc))
    if isinstance(exc, BackendUnavailable):
        return error_response(503, "backend_unavailable", "the backend is unavailable")
    if isinstance(exc, ConfigError | ValueError):
        return error_response(422, "invalid_input", str(exc))
    return None


async def _read_limited(request: Request, limit: int) -> JSONResponse | None:
    """Read the body into the request, refusing (413) past `limit` bytes without buffering more."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            return error_response(400, "bad_request", "invalid Content-Length")
        if too_big:
            return error_response(413, "payload_too_large", f"request body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return error_response(413, "payload_too_large", f"request body is over {limit} bytes")
        chunks.append(chunk)
    request._body = b"".join(chunks)  # Starlette's cache: the handler reads it from here
    return _parse_json(request, request._body)


def _is_json(content_type: str | None) -> bool:
    # The same test FastAPI applies before it parses a body as JSON.
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads would keep the last of two equal keys; what was meant is ambiguous.
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _NotJson(f"the key {key!r} appears twice in one object")
        found[key] = value
    return found


def _body_error(message: str) -> JSONResponse:
    return error_response(
        422, "validation_error", "invalid request",
        [{"loc": ["body"], "msg": message, "type": "json_invalid"}],
    )


def _parse_json(request: Request, body: bytes) -> JSONResponse | None:
    """Parse a JSON body strictly, so that what FastAPI validates can also be stored and
    served back: no NaN/Infinity, no key twice in one object, valid UTF-8 without lone
    surrogates, bounded nesting and number sizes. Syntax errors are left to FastAPI (it reports
    their position).
    """
    if not body or not _is_json(request.headers.get("content-type")):
        return None
    try:
        parsed = json.loads(body, parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError:
        return None
    except UnicodeDecodeError:
        return _body_error("the body is not valid UTF-8")
    except RecursionError:
        return _body_error("the body is nested too deeply")
    except _NotJson as exc:
        return _body_error(str(exc))
    except ValueError:  # an integer past Python's digit limit (4300)
        return _body_error("the body has a number with too many digits")
    try:
        json.dumps(parsed, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return _body_error("the body contains a lone UTF-16 surrogate (\\ud800-\\udfff)")
    except RecursionError:
        return _body_error("the body is nested too deeply")
    request._json = parsed  # Starlette's cache: FastAPI validates this value
    return None


def limited_route_class(max_body_bytes: int = DEFAULT_MAX_BODY) -> type[APIRoute]:
    """An `APIRoute` class that limits request bodies and answers errors in the stable shape."""

    class ApiRoute(APIRoute):
        max_body = max_body_bytes

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                if request.method in ("POST", "PUT", "PATCH", "DELETE"):
                    refused = await _read_limited(request, self.max_body)
                    if refused is not None:
                        return refused
                try:
                    return await handler(request)
                except Exception as exc:
                    response = convert(exc)
                    if response is None:
                        log.exception("unexpected error in %s %s", request.method, self.path)
                        return error_response(500, "internal", "internal server error")
                    return response

            return handle

    return ApiRoute
