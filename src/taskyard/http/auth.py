"""Who is calling: bearer JWTs (HS256) and static API keys, the viewer/admin roles, audit logs,
and which secrets are too weak to accept (`weak_secret_reason`).

Tokens are compared in constant time and never logged; logs name a key by its configured
name or a JWT by its subject, and a failed attempt by the client address.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import re
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt

from taskyard.errors import ConfigError, TaskyardError
from taskyard.http.throttle import FailureThrottle

if TYPE_CHECKING:
    from taskyard.http.context import HttpContext

__all__ = (
    "ANONYMOUS_ADMIN",
    "MIN_SECRET_BYTES",
    "SECRET_HINT",
    "AuthError",
    "Authenticator",
    "Principal",
    "Role",
    "TooManyFailures",
    "audit",
    "check_bind",
    "check_secret",
    "is_loopback",
    "issue_token",
    "new_secret",
    "parse_ttl",
    "shared_authenticator",
    "weak_secret_reason",
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
    #: Names the credential (not secret): a hash of an API key's digest, or a JWT's subject,
    #: issue time and expiry. Dashboard sessions carry it, to end with their credential.
    credential: str = ""

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


class TooManyFailures(AuthError):
    """429: this client address failed authentication too often; try after `retry_after` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed authentication attempts: retry in {retry_after}s")
        self.status_code = 429
        self.code = "too_many_requests"
        self.retry_after = retry_after


#: How to make a good secret; every refusal of a weak one ends with this.
SECRET_HINT = (
    "make a random one with `taskyard secret` or "  # noqa: S105 - advice text, not a secret
    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
)
#: Fewest estimated bits of randomness a secret must show.
MIN_SECRET_BITS = 128
#: Words of placeholder and dictionary secrets (compared without case or separators).
_PLACEHOLDERS = (
    "changeme", "secret", "password", "passwd", "example", "placeholder", "replace", "dummy",
    "insecure", "default", "qwerty", "letmein", "sample", "taskyard",
)
_YOUR = re.compile(r"your[-_ .]", re.IGNORECASE)
_WORDS = re.compile(r"[A-Za-z]{2,}(?:[-_ .,:]+[A-Za-z]{2,}){2,}[-_ .,:!]*")


def weak_secret_reason(text: str) -> str | None:
    """Why `text` is not an acceptable JWT secret or API key, or None when it looks random.

    Refused: shorter than `MIN_SECRET_BYTES`; a placeholder or dictionary word ("change me",
    "secret", "your-…"); words separated by spaces or dashes; one short pattern repeated
    (`"s" * 48`, `abcabc…`); runs of neighbouring characters (`abcdef…`, `123456…`); fewer
    than `MIN_SECRET_BITS` estimated bits: the smaller of length * log2(the alphabet its kinds
    of characters suggest: hex, digits, letters, symbols) and twice the bits by the
    characters' own frequencies (few distinct characters). Pure; never echoes `text`.
    """
    if len(text.encode()) < MIN_SECRET_BYTES:
        return f"it is shorter than {MIN_SECRET_BYTES} bytes"
    folded = re.sub(r"[^a-z0-9]", "", text.lower())
    for word in _PLACEHOLDERS:
        if word in folded:
            return f"it contains the word {word!r}, so it looks like a placeholder"
    if _YOUR.search(text):
        return "it contains 'your-', so it looks like a placeholder"
    if _WORDS.fullmatch(text.strip()) and text.lower() == text:
        return "it is words separated by spaces or dashes, not random characters"
    period = _period(text)
    if period <= len(text) // 2:
        return f"it repeats a pattern of {period} character{'s' if period > 1 else ''}"
    runs = sum(
        1 for a, b, c in zip(text, text[1:], text[2:], strict=False)
        if ord(b) - ord(a) == ord(c) - ord(b) in (1, -1)
    )
    if runs * 2 >= len(text):
        return "it is mostly runs of neighbouring characters (like abcdef or 123456)"
    counts = Counter(text)
    spread = -sum(n * math.log2(n / len(text)) for n in counts.values())
    bits = min(spread * 2, len(text) * math.log2(_alphabet(text)))
    if bits < MIN_SECRET_BITS:
        return (
            f"it has too little randomness (about {int(bits)} bits from {len(counts)} distinct "
            f"characters; at least {MIN_SECRET_BITS} needed)"
        )
    return None


def _alphabet(text: str) -> int:
    """How many characters `text` was likely drawn from, by the kinds it uses."""
    if all(c in "0123456789abcdef" for c in text) or all(c in "0123456789ABCDEF" for c in text):
        return 16
    kinds = (
        (str.isdigit, 10), (str.islower, 26), (str.isupper, 26),
        (lambda c: not c.isalnum(), 32),
    )
    return sum(size for test, size in kinds if any(test(c) for c in text)) or 1


def _period(text: str) -> int:
    """The length of the shortest pattern that `text` repeats (its own length when none)."""
    # Prefix function (KMP): the longest proper prefix that is also a suffix.
    border = [0] * len(text)
    k = 0
    for i in range(1, len(text)):
        while k and text[i] != text[k]:
            k = border[k - 1]
        if text[i] == text[k]:
            k += 1
        border[i] = k
    return len(text) - (border[-1] if text else 0)


def new_secret() -> str:
    """A fresh random secret (48 bytes, URL-safe base64) that `weak_secret_reason` accepts."""
    while True:
        secret = secrets.token_urlsafe(48)
        if weak_secret_reason(secret) is None:  # a placeholder word by chance: ~1 in 10**6
            return secret


def check_secret(setting: str, text: str) -> None:
    """`ConfigError` naming `setting` (never its value) when `text` is a weak secret."""
    reason = weak_secret_reason(text)
    if reason is not None:
        raise ConfigError(f"invalid setting {setting!r}: refused as a secret because {reason}; {SECRET_HINT}")


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


def _key_credential(digest: bytes) -> str:
    # A hash of the key's digest: names the key without letting its digest out.
    return "key:" + hashlib.sha256(b"taskyard-credential:" + digest).hexdigest()[:32]


class Authenticator:
    """Checks bearer tokens against the configured JWT secret and API keys.

    `http` is the settings section (`auth_enabled`, `jwt_secret`, `api_keys`). API keys are
    kept only as SHA-256 digests.
    """

    def __init__(self, http: Any, *, throttle: FailureThrottle | None = None) -> None:
        self.enabled = bool(getattr(http, "auth_enabled", True))
        self._secret = _secret_value(getattr(http, "jwt_secret", None))
        if self._secret is not None:
            check_secret("http.jwt_secret", self._secret)
        self.audience: str | None = getattr(http, "jwt_audience", None)
        self.issuer: str | None = getattr(http, "jwt_issuer", None)
        self._keys: list[tuple[bytes, Role, str]] = []
        for index, key in enumerate(getattr(http, "api_keys", None) or ()):
            plain = _secret_value(key.key) or ""
            name = getattr(key, "name", None) or f"key-{index}"
            check_secret(f"http.api_keys[{index}] ({name})", plain)
            self._keys.append((_digest(plain), Role(str(key.role)), str(name)))
        #: Failed attempts per client address (shared by the API and the dashboard login).
        self.throttle = throttle or FailureThrottle()
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
                found = Principal(role=role, key_id=f"key:{name}", credential=_key_credential(key_digest))
        if found is not None:
            return found
        if self._secret is None or token.count(".") != 2:
            raise AuthError("invalid token")
        return self._decode(token, now)

    def authenticate_client(self, token: str, client: str) -> Principal:
        """`authenticate` for a request from address `client`: refused with `TooManyFailures`
        (429) while that address is throttled; each failure is logged to the audit logger
        (address and reason, never the token) and counted against the address."""
        wait = self.throttle.retry_after(client)
        if wait is not None:
            log.warning("authentication refused from %s: throttled for %ss", client, wait,
                        extra={"client": client, "action": "auth.throttled"})
            raise TooManyFailures(wait)
        try:
            return self.authenticate(token)
        except AuthError as exc:
            self.throttle.failed(client)
            log.warning("authentication failed from %s: %s", client, exc,
                        extra={"client": client, "action": "auth.failed"})
            raise

    def is_current(self, credential: str, role: Role) -> bool:
        """True while the credential a session was made from is still accepted with `role`:
        an API key still configured with that role, or a JWT while a secret is set (a new
        secret already ends every session: their cookies are signed with a key made from it)."""
        if credential.startswith("key:"):
            return any(
                hmac.compare_digest(credential, _key_credential(digest)) and key_role is role
                for digest, key_role, _ in self._keys
            )
        return credential.startswith("jwt:") and self._secret is not None

    def _decode(self, token: str, now: datetime | None) -> Principal:
        if self._secret is None:  # an explicit check: `python -O` would drop an assert
            raise AuthError("invalid token")
        required = ["exp", "role"] + ["aud"] * bool(self.audience) + ["iss"] * bool(self.issuer)
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": required, "verify_exp": now is None},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as exc:
            raise AuthError(f"invalid token: {str(exc).lower()}") from None
        except jwt.PyJWTError:
            raise AuthError("invalid token") from None
        for claim in ("exp", "iat", "nbf"):
            # PyJWT takes "exp": "99999999999" (a numeric string); RFC 7519 wants a number.
            if claim in claims and (type(claims[claim]) is not int):
                raise AuthError(f"invalid token: the {claim!r} claim must be an integer")
        try:
            expires = datetime.fromtimestamp(claims["exp"], UTC)
        except (OverflowError, OSError, ValueError):  # an `exp` past year 9999
            expires = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
        if now is not None and expires + timedelta(seconds=LEEWAY_SECONDS) < now:
            raise AuthError("token expired")
        try:
            role = Role(claims["role"])
        except (ValueError, TypeError):
            raise AuthError("invalid token role") from None
        subject = str(claims.get("sub") or "jwt")[:64]
        credential = "jwt:" + hashlib.sha256(
            json.dumps([subject, claims.get("jti"), claims.get("iat"), claims["exp"]]).encode()
        ).hexdigest()[:32]
        return Principal(role=role, key_id=f"jwt:{subject}", expires_at=expires, credential=credential)


def shared_authenticator(ctx: HttpContext) -> Authenticator:
    """The one `Authenticator` of an HTTP context (`ctx.extra`), so the API and the dashboard
    count failed attempts together."""
    extra = getattr(ctx, "extra", None)
    if extra is None:
        return Authenticator(ctx.settings.http)
    found = extra.get("authenticator")
    if not isinstance(found, Authenticator):
        found = extra["authenticator"] = Authenticator(ctx.settings.http)
    return found


def issue_token(
    secret: str,
    *,
    role: Role | str,
    ttl: float,
    subject: str = "taskyard-cli",
    audience: str | None = None,
    issuer: str | None = None,
    now: datetime | None = None,
) -> str:
    """A signed HS256 JWT with `role`, `sub`, `iat`, `exp = now + ttl`, a random `jti`, and
    `aud` / `iss` when given. Refuses (`ConfigError`) a weak secret."""
    check_secret("http.jwt_secret", secret)
    if ttl <= 0:
        raise ValueError("token ttl must be > 0")
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "role": Role(role).value,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl)).timestamp()),
        "jti": secrets.token_urlsafe(12),
    }
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
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
