"""Who is calling: bearer JWTs (HS256) and static API keys, the viewer/admin roles, audit logs.

Tokens are compared in constant time and never logged; logs name a key by its configured
name or a JWT by its subject.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from taskyard.errors import ConfigError, TaskyardError

__all__ = (
    "ANONYMOUS_ADMIN",
    "MIN_SECRET_BYTES",
    "AuthError",
    "Authenticator",
    "Principal",
    "Role",
    "audit",
    "check_bind",
    "is_loopback",
    "issue_token",
    "parse_ttl",
)

log = logging.getLogger("taskyard.http.audit")

#: Shortest accepted JWT secret and API key (bytes of UTF-8).
MIN_SECRET_BYTES = 32
#: Clock skew tolerated on `exp`.
LEEWAY_SECONDS = 30
ALGORITHM = "HS256"


class Role(enum.StrEnum):
    """`viewer` may read (GET); `admin` may do everything."""

    VIEWER = "viewer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `key_id` is safe to log (a key's name or a JWT's subject)."""

    role: Role
    key_id: str
    expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        """True when this caller may act, not only read."""
        return self.role is Role.ADMIN


#: The caller when authentication is switched off (only allowed on a loopback address).
ANONYMOUS_ADMIN = Principal(role=Role.ADMIN, key_id="anonymous")


class AuthError(TaskyardError):
    """Authentication failed (401) or the role does not allow the action (403)."""

    def __init__(self, message: str, *, forbidden: bool = False) -> None:
        super().__init__(message)
        self.status_code = 403 if forbidden else 401
        self.code = "forbidden" if forbidden else "unauthorized"


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP addresses."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth_enabled: bool) -> None:
    """Refuse to serve without authentication on anything but loopback (`ConfigError`)."""
    if not auth_enabled and not is_loopback(host):
        raise ConfigError(
            f"http.auth_enabled is false but http.host is {host!r}: authentication may be "
            "switched off only while bound to a loopback address (127.0.0.1, ::1, localhost)"
        )


def _secret_value(value: Any) -> str | None:
    """The plain string behind a `SecretStr` (or a plain str), or None."""
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    """Checks bearer tokens against the configured JWT secret and API keys.

    `http` is the settings section (`auth_enabled`, `jwt_secret`, `api_keys`). API keys are
    kept only as SHA-256 digests.
    """

    def __init__(self, http: Any) -> None:
        self.enabled = bool(getattr(http, "auth_enabled", True))
        self._secret = _secret_value(getattr(http, "jwt_secret", None))
        if self._secret is not None and len(self._secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"http.jwt_secret is too short: use at least {MIN_SECRET_BYTES} random bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        self._keys: list[tuple[bytes, Role, str]] = []
        for index, key in enumerate(getattr(http, "api_keys", None) or ()):
            plain = _secret_value(key.key) or ""
            name = getattr(key, "name", None) or f"key-{index}"
            if len(plain.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"http.api_keys[{index}] ({name}) is too short: use at least "
                    f"{MIN_SECRET_BYTES} random bytes"
                )
            self._keys.append((_digest(plain), Role(str(key.role)), str(name)))
        if self.enabled and self._secret is None and not self._keys:
            log.warning(
                "authentication is on but neither http.jwt_secret nor http.api_keys is set: "
                "every /api and dashboard request will be refused"
            )

    @property
    def secret(self) -> str | None:
        """The JWT secret (for signing dashboard sessions), or None."""
        return self._secret

    def authenticate(self, token: str, *, now: datetime | None = None) -> Principal:
        """The caller a bearer token stands for; `AuthError` (401) when it is not valid."""
        if not token:
            raise AuthError("missing bearer token")
        digest = _digest(token)
        found: Principal | None = None
        # Compare against every key so timing does not reveal which one (or whether one) matched.
        for key_digest, role, name in self._keys:
            if hmac.compare_digest(digest, key_digest) and found is None:
                found = Principal(role=role, key_id=f"key:{name}")
        if found is not None:
            return found
        if self._secret is None or token.count(".") != 2:
            raise AuthError("invalid token")
        return self._decode(token, now)

    def _decode(self, token: str, now: datetime | None) -> Principal:
        assert self._secret is not None
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "role"], "verify_exp": now is None},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.PyJWTError:
            raise AuthError("invalid token") from None
        try:
            expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        except (OverflowError, OSError, ValueError):  # an `exp` past year 9999
            expires = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
        if now is not None and expires + timedelta(seconds=LEEWAY_SECONDS) < now:
            raise AuthError("token expired")
        try:
            role = Role(claims["role"])
        except ValueError:
            raise AuthError("invalid token role") from None
        subject = str(claims.get("sub") or "jwt")[:64]
        return Principal(role=role, key_id=f"jwt:{subject}", expires_at=expires)


def issue_token(
    secret: str,
    *,
    role: Role | str,
    ttl: float,
    subject: str = "taskyard-cli",
    now: datetime | None = None,
) -> str:
    """A signed HS256 JWT with `role`, `sub`, `iat` and `exp = now + ttl`."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"http.jwt_secret is too short: use at least {MIN_SECRET_BYTES} bytes")
    if ttl <= 0:
        raise ValueError("token ttl must be > 0")
    issued = now or datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": Role(role).value,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl)).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_ttl(text: str) -> float:
    """`90`, `30s`, `15m`, `12h`, `1d`, `2w` → seconds."""
    match = _TTL.match(text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"bad duration {text!r}: use a number with s, m, h, d or w (e.g. 1d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def audit(principal: Principal, action: str, target: str, extra: Iterable[str] = ()) -> None:
    """Log an admin action with who did it (never the token itself)."""
    log.info(
        "admin action %s on %s by %s%s",
        action,
        target,
        principal.key_id,
        "".join(f" {e}" for e in extra),
        extra={"actor": principal.key_id, "action": action, "target": target},
    )
