"""Dashboard sessions: a signed cookie made from a checked bearer token, and the CSRF token
(synchronizer token plus Origin / Sec-Fetch-Site checks) every form carries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from taskyard.http.auth import Principal, Role

__all__ = ("COOKIE", "Session", "SessionBook", "same_origin")

COOKIE = "taskyard_session"
#: Longest a dashboard session lasts, whatever the token's own expiry.
MAX_AGE = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in dashboard user."""

    principal: Principal
    expires: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionBook:
    """Signs and checks session cookies. The key derives from the JWT secret when there is one
    (sessions survive restarts and work across replicas), else it is random per process.
    """

    def __init__(self, secret: str | None) -> None:
        base = secret.encode() if secret else secrets.token_bytes(32)
        self._key = hmac.new(base, b"taskyard-dashboard-session", hashlib.sha256).digest()

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def issue(self, response: Response, principal: Principal, *, secure: bool) -> Session:
        """Start a session for `principal` and set its cookie on `response`."""
        expires = int(time.time()) + MAX_AGE
        if principal.expires_at is not None:
            expires = min(expires, int(principal.expires_at.timestamp()))
        session = Session(principal=principal, expires=expires, nonce=secrets.token_urlsafe(16))
        body = _b64(json.dumps(
            {"r": principal.role.value, "k": principal.key_id, "e": expires, "n": session.nonce}
        ).encode())
        response.set_cookie(
            COOKIE,
            f"{body}.{self._sign(body)}",
            max_age=max(expires - int(time.time()), 0),
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/",
        )
        return session

    def read(self, request: Request) -> Session | None:
        """The request's valid, unexpired session, or None."""
        raw = request.cookies.get(COOKIE, "")
        body, _, signature = raw.partition(".")
        if not body or not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(
                principal=Principal(role=Role(data["r"]), key_id=str(data["k"])),
                expires=int(data["e"]),
                nonce=str(data["n"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def csrf_token(self, session: Session) -> str:
        """The form token bound to this session."""
        return self._sign("csrf:" + session.nonce)

    def check_csrf(self, session: Session, token: str) -> bool:
        """True when `token` is this session's form token."""
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())

    def login_token(self, nonce: str) -> str:
        """The login form's token, bound to a pre-session cookie nonce."""
        return self._sign("login:" + nonce)


def same_origin(request: Request) -> bool:
    """Fetch Metadata and Origin agree that a POST comes from this site's own pages."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        expected = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
        return hmac.compare_digest(origin.encode(), expected.encode())
    return origin != "null"
