"""Route guards: every API route needs a bearer token; viewers may only read (GET/HEAD)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from taskyard.http.auth import ANONYMOUS_ADMIN, Authenticator, AuthError, Principal

__all__ = ("SAFE_METHODS", "Guard", "client_address", "current_principal", "make_guard", "require_admin")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A JWT signed with http.jwt_secret (`taskyard token create`) or a static API key.",
)

Guard = Callable[..., Awaitable[Principal]]


def client_address(request: Request) -> str:
    """The peer address failed attempts are counted against (behind a proxy, the proxy's
    unless the server trusts its forwarded headers)."""
    return request.client.host if request.client else "unknown"


def make_guard(authenticator: Authenticator) -> Guard:
    """The dependency that authenticates a request and enforces the role by HTTP method."""

    async def guard(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> Principal:
        if not authenticator.enabled:
            principal = ANONYMOUS_ADMIN
        elif credentials is None:
            raise AuthError("missing bearer token (Authorization: Bearer <token>)")
        else:
            principal = authenticator.authenticate_client(credentials.credentials, client_address(request))
        if request.method not in SAFE_METHODS and not principal.is_admin:
            raise AuthError("the viewer role may only read", forbidden=True)
        request.state.principal = principal
        return principal

    return guard


def current_principal(request: Request) -> Principal:
    """Dependency: the caller the route guard authenticated (for application routes too)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise AuthError("missing bearer token")
    return principal


def require_admin(principal: Principal = Depends(current_principal)) -> Principal:
    """Dependency for application routes that need the admin role even for a GET."""
    if not principal.is_admin:
        raise AuthError("this needs the admin role", forbidden=True)
    return principal
