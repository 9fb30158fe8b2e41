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
from collections.abc import Callable
from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.responses import Response

from taskyard.http.auth import Principal, Role

__all__ = ("COOKIE", "Session", "SessionBook", "same_origin")

COOKIE = "taskyard_session"
#: Longest a dashboard session lasts, whatever the token's own expiry.
MAX_AGE = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in dashboard user: until `expires` at the latest, and `seen` last used."""

    principal: Principal
    expires: int
    nonce: str
    seen: int = 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionBook:
    """Signs and checks session cookies. The key derives from the JWT secret when there is one
    (sessions survive restarts and work across replicas; a new secret ends them all), else it
    is random per process.

    A session ends: at logout (its nonce is refused by this process until it would have
    expired), after `idle` seconds unused (the cookie records its last use and is re-issued on
    use), when `is_current(credential, role)` says the credential it was made from is gone
    (an API key removed or given another role), and after `MAX_AGE` or the token's expiry.
    """

    def __init__(
        self,
        secret: str | None,
        *,
        idle: int = 1800,
        is_current: Callable[[str, Role], bool] = lambda credential, role: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        base = secret.encode() if secret else secrets.token_bytes(32)
        self._key = hmac.new(base, b"taskyard-dashboard-session", hashlib.sha256).digest()
        self.idle = idle
        self._is_current = is_current
        self._clock = clock
        self._revoked: dict[str, int] = {}  # nonce -> when the session would have expired

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def issue(self, response: Response, principal: Principal, *, secure: bool, path: str = "/") -> Session:
        """Start a session for `principal` and set its cookie on `response` (for `path`: the
        prefix the dashboard is served under)."""
        now = int(self._clock())
        expires = now + MAX_AGE
        if principal.expires_at is not None:
            expires = min(expires, int(principal.expires_at.timestamp()))
        session = Session(principal=principal, expires=expires, nonce=secrets.token_urlsafe(16), seen=now)
        self._set(response, session, secure=secure, path=path)
        return session

    def refresh(self, response: Response, session: Session, *, secure: bool, path: str = "/") -> None:
        """Mark `session` used now: re-issue its cookie (same nonce and end) on `response`."""
        self._set(response, replace(session, seen=int(self._clock())), secure=secure, path=path)

    def _set(self, response: Response, session: Session, *, secure: bool, path: str) -> None:
        principal = session.principal
        body = _b64(json.dumps({
            "r": principal.role.value, "k": principal.key_id, "c": principal.credential,
            "e": session.expires, "n": session.nonce, "s": session.seen,
        }).encode())
        response.set_cookie(
            COOKIE,
            f"{body}.{self._sign(body)}",
            max_age=max(min(session.expires - session.seen, self.idle), 0),
            httponly=True,
            samesite="lax",
            secure=secure,
            path=path,
        )

    def read(self, request: Request) -> Session | None:
        """The request's valid, unexpired, unrevoked session, or None."""
        raw = request.cookies.get(COOKIE, "")
        body, _, signature = raw.partition(".")
        if not body or not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(
                principal=Principal(role=Role(data["r"]), key_id=str(data["k"]), credential=str(data["c"])),
                expires=int(data["e"]),
                nonce=str(data["n"]),
                seen=int(data["s"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        now = self._clock()
        if session.expires <= now or session.seen + self.idle <= now:
            return None
        if session.nonce in self._revoked:
            return None
        if not self._is_current(session.principal.credential, session.principal.role):
            return None
        return session

    def revoke(self, session: Session) -> None:
        """End `session` now (in this process: other replicas accept its cookie until it idles out)."""
        now = self._clock()
        for nonce in [n for n, until in self._revoked.items() if until <= now]:
            del self._revoked[nonce]
        self._revoked[session.nonce] = session.expires

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
