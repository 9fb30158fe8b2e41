"""Pure rules of `http/auth.py`, `http/throttle.py` and dashboard sessions: weak secrets,
JWT claims, the failure throttle, and when a session cookie stops working."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from types import SimpleNamespace

import jwt
import pytest
from starlette.requests import Request
from starlette.responses import Response

from taskyard.errors import ConfigError
from taskyard.http.auth import (
    Authenticator,
    AuthError,
    Role,
    TooManyFailures,
    issue_token,
    new_secret,
    weak_secret_reason,
)
from taskyard.http.dashboard.session import COOKIE, SessionBook
from taskyard.http.throttle import FailureThrottle

WEAK = {
    "s" * 48: "repeats a pattern",
    "x" * 40: "repeats a pattern",
    "abc" * 16: "repeats a pattern of 3",
    "k9X!" * 10: "repeats a pattern of 4",
    "short-but-random-Zq8": "shorter than 32",
    "change-me-to-at-least-32-random-bytes": "'changeme'",
    "Change Me: at least 32 bytes of randomness!": "'changeme'",
    "my-jwt-SECRET-for-production-2026-xyz": "'secret'",
    "correct horse battery staple is long enough": "words separated",
    "your-api-key-goes-here-1234567890qz": "'your-'",
    "Password-1234567890-qwfpgjluy-ZXCV": "'password'",
    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF": "runs of neighbouring",
    "0110100110010110100101100110100110010110": "too little randomness",
}


@pytest.mark.parametrize(("text", "reason"), list(WEAK.items()))
def test_weak_secrets_are_refused_with_a_reason(text: str, reason: str) -> None:
    found = weak_secret_reason(text)
    assert found is not None and reason in found
    assert text not in found


def test_random_secrets_pass() -> None:
    for text in [secrets.token_urlsafe(48), secrets.token_urlsafe(32), secrets.token_hex(16),
                 secrets.token_hex(32), new_secret(), "Tr0ub4dor&3xQ9!mZr7#vK2pL8wN4sY6b"]:
        assert weak_secret_reason(text) is None, text


def _http(**overrides: object) -> SimpleNamespace:
    base: dict[str, object] = {"auth_enabled": True, "jwt_secret": secrets.token_urlsafe(48),
                               "api_keys": [], "jwt_audience": None, "jwt_issuer": None}
    return SimpleNamespace(**{**base, **overrides})


def test_authenticator_refuses_weak_secrets_and_keys_without_echoing_them() -> None:
    with pytest.raises(ConfigError, match=r"http\.jwt_secret.*taskyard secret") as info:
        Authenticator(_http(jwt_secret="s" * 48))
    assert "ssss" not in str(info.value)
    key = SimpleNamespace(key="change-me-change-me-change-me-1234", role="admin", name="ci")
    with pytest.raises(ConfigError, match=r"http\.api_keys\[0\] \(ci\)") as info:
        Authenticator(_http(api_keys=[key]))
    assert "change-me-change" not in str(info.value)
    with pytest.raises(ConfigError, match="jwt_secret"):
        issue_token("x" * 40, role="admin", ttl=60)


def test_audience_and_issuer_are_checked_when_set() -> None:
    http = _http(jwt_audience="taskyard-api", jwt_issuer="ops")
    auth, secret = Authenticator(http), str(http.jwt_secret)
    good = issue_token(secret, role="viewer", ttl=60, audience="taskyard-api", issuer="ops")
    assert auth.authenticate(good).role is Role.VIEWER
    for token in (
        issue_token(secret, role="viewer", ttl=60),  # neither
        issue_token(secret, role="viewer", ttl=60, audience="taskyard-api"),  # no iss
        issue_token(secret, role="viewer", ttl=60, audience="other", issuer="ops"),
        issue_token(secret, role="viewer", ttl=60, audience="taskyard-api", issuer="someone"),
    ):
        with pytest.raises(AuthError):
            auth.authenticate(token)


@pytest.mark.parametrize("exp", ["99999999999", 99999999999.5, True, [99999999999]])
def test_exp_must_be_an_integer(exp: object) -> None:
    http = _http()
    auth = Authenticator(http)
    token = jwt.encode({"role": "admin", "exp": exp}, str(http.jwt_secret), algorithm="HS256")
    with pytest.raises(AuthError):
        auth.authenticate(token)
    fine = jwt.encode({"role": "admin", "exp": 99999999999}, str(http.jwt_secret), algorithm="HS256")
    assert auth.authenticate(fine).is_admin


def test_throttle_allows_a_burst_then_refills() -> None:
    now = [1000.0]
    throttle = FailureThrottle(burst=10, window=60, clock=lambda: now[0])
    for _ in range(10):
        assert throttle.retry_after("10.0.0.1") is None
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 6  # one attempt back every 6 s
    assert throttle.retry_after("10.0.0.2") is None  # per address
    now[0] += 6
    assert throttle.retry_after("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 6


def test_authenticate_client_counts_failures_and_logs_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    http = _http()
    auth = Authenticator(http, throttle=FailureThrottle(burst=3, window=60))
    bad = "not-a-token-" + secrets.token_urlsafe(8)
    for _ in range(3):
        with pytest.raises(AuthError):
            auth.authenticate_client(bad, "192.0.2.7")
    with pytest.raises(TooManyFailures) as info:
        auth.authenticate_client(issue_token(str(http.jwt_secret), role="admin", ttl=60), "192.0.2.7")
    assert info.value.status_code == 429 and info.value.retry_after == 20
    assert auth.authenticate_client(issue_token(str(http.jwt_secret), role="admin", ttl=60), "192.0.2.8").is_admin
    text = caplog.text
    assert text.count("authentication failed from 192.0.2.7") == 3 and "throttled" in text
    assert bad not in text


# -- dashboard sessions --------------------------------------------------------------------


def _request(response: Response) -> Request:
    cookie = response.headers["set-cookie"].split(";")[0]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(b"cookie", cookie.encode())]})


def _world(idle: int = 1800) -> tuple[SimpleNamespace, Authenticator, SessionBook, list[float], str]:
    key = secrets.token_urlsafe(40)
    http = _http(api_keys=[SimpleNamespace(key=key, role="admin", name="ops")])
    auth = Authenticator(http)
    now = [1_000_000.0]
    book = SessionBook(str(http.jwt_secret), idle=idle, is_current=auth.is_current, clock=lambda: now[0])
    return http, auth, book, now, key


def test_session_idles_out_unless_used() -> None:
    _, auth, book, now, key = _world(idle=600)
    first = Response()
    session = book.issue(first, auth.authenticate(key), secure=False)
    assert COOKIE in first.headers["set-cookie"] and "Max-Age=600" in first.headers["set-cookie"]
    now[0] += 599
    assert book.read(_request(first)) is not None
    used = Response()
    book.refresh(used, session, secure=False)  # sliding: used at 599 s
    now[0] += 599
    assert book.read(_request(first)) is None  # the old cookie idled out
    assert book.read(_request(used)) is not None
    now[0] += 1
    assert book.read(_request(used)) is None


def test_session_ends_at_logout_and_with_its_key() -> None:
    http, auth, book, now, key = _world()
    response = Response()
    session = book.issue(response, auth.authenticate(key), secure=False)
    assert book.read(_request(response)) == session
    book.revoke(session)
    assert book.read(_request(response)) is None
    # Same secret, the key removed from the config (a restart with new settings): refused.
    other = SimpleNamespace(key=secrets.token_urlsafe(40), role="admin", name="ops")
    again = Response()
    book.issue(again, auth.authenticate(key), secure=False)
    for keys in ([other], [SimpleNamespace(key=key, role="viewer", name="ops")]):
        changed = Authenticator(_http(jwt_secret=http.jwt_secret, api_keys=keys))
        restarted = SessionBook(str(http.jwt_secret), is_current=changed.is_current, clock=lambda: now[0])
        assert restarted.read(_request(again)) is None
    same = Authenticator(_http(jwt_secret=http.jwt_secret, api_keys=http.api_keys))
    restarted = SessionBook(str(http.jwt_secret), is_current=same.is_current, clock=lambda: now[0])
    assert restarted.read(_request(again)) is not None
    # A new secret: every cookie signed with the old one is refused.
    rotated = SessionBook(secrets.token_urlsafe(48), is_current=same.is_current, clock=lambda: now[0])
    assert rotated.read(_request(again)) is None


def test_jwt_session_ends_with_the_token() -> None:
    http, auth, book, now, _ = _world()
    token = issue_token(str(http.jwt_secret), role="viewer", ttl=300,
                        now=datetime.fromtimestamp(now[0], UTC))
    response = Response()
    book.issue(response, auth.authenticate(token, now=datetime.fromtimestamp(now[0], UTC)), secure=False)
    assert book.read(_request(response)) is not None
    now[0] += 300  # the token's own exp, well before MAX_AGE and the idle timeout
    assert book.read(_request(response)) is None
