"""Issue 10, items 1, 4 and 5: weak secrets, dashboard sessions that end, and auth hygiene
(logout CSRF, the dev token files, failed-auth logging and throttling, JWT aud/iss/exp),
probed against real `taskyard run` processes over loopback HTTP."""

from __future__ import annotations

import json
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import jwt
import pytest
import yaml

from taskyard.http.auth import issue_token, weak_secret_reason
from tests.security.conftest import Server
from tests.support.processes import ROOT
from tests.support.waiting import wait_until_sync

Start = Callable[..., AbstractContextManager[Server]]


def _refused_to_start(server: Server) -> str:
    assert server.process.wait(timeout=60) != 0
    return server.logs()


# -- 1. weak and placeholder secrets ---------------------------------------------------------


@pytest.mark.parametrize("secret", [
    "change-me-to-at-least-32-random-bytes",  # what deploy/kubernetes used to ship
    "s" * 48,
    "abc" * 16,
])
def test_a_weak_jwt_secret_is_refused_at_start(start_server: Start, secret: str) -> None:
    with start_server(env={"TASKYARD_HTTP__JWT_SECRET": secret}, expect_start=False) as server:
        logs = _refused_to_start(server)
    assert "http.jwt_secret" in logs and "taskyard secret" in logs and "token_urlsafe(48)" in logs
    assert secret not in logs


def test_a_weak_api_key_is_refused_at_start(start_server: Start) -> None:
    weak = "your-api-key-here-0123456789-abcdef"
    keys = json.dumps([{"key": weak, "role": "admin", "name": "ops"}])
    with start_server(env={"TASKYARD_HTTP__API_KEYS": keys}, expect_start=False) as server:
        logs = _refused_to_start(server)
    assert "http.api_keys[0] (ops)" in logs and weak not in logs


def test_taskyard_secret_prints_a_secret_the_server_accepts(start_server: Start) -> None:
    made = [
        subprocess.run([sys.executable, "-m", "taskyard", "secret"], capture_output=True,
                       text=True, check=True, cwd=ROOT).stdout.strip()
        for _ in range(2)
    ]
    assert made[0] != made[1] and all(weak_secret_reason(s) is None for s in made)
    with start_server(env={"TASKYARD_HTTP__JWT_SECRET": made[0]}) as server, server.client() as http:
        token = issue_token(made[0], role="viewer", ttl=60)
        assert http.get("/api/v1/queues", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_deploy_manifests_have_no_usable_default_secret() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    env = compose["x-taskyard"]["environment"]
    assert re.fullmatch(r"\$\{TASKYARD_JWT_SECRET:\?[^}]+\}", env["TASKYARD_HTTP__JWT_SECRET"])
    assert "${TASKYARD_DB_PASSWORD:?" in env["TASKYARD_BACKEND"]
    assert "${TASKYARD_DB_PASSWORD:?" in compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    text = (ROOT / "deploy" / "kubernetes" / "taskyard.yaml").read_text()
    docs = list(yaml.safe_load_all(text))
    assert not [d for d in docs if d["kind"] == "Secret"]  # the operator creates it
    assert "kubectl create secret generic taskyard" in text and "$(taskyard secret)" in text
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env_of = {e["name"]: e for e in container["env"]}
        ref = env_of["TASKYARD_HTTP__JWT_SECRET"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "taskyard", "key": "jwt-secret"} and "value" not in env_of["TASKYARD_HTTP__JWT_SECRET"]
        assert not any("secretRef" in source for source in container.get("envFrom", []))


# -- dashboard helpers -----------------------------------------------------------------------


def _login(server: Server, token: str) -> str:
    """Sign in on the dashboard with `token`; the session cookie's value."""
    with server.client() as http:
        form = http.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        signed = http.post("/login", data={"csrf": csrf.group(1), "token": token, "next": "/"})
        assert signed.status_code == 303 and signed.headers["location"] == "/", signed.text
        return signed.cookies["taskyard_session"]


def _page(server: Server, cookie: str, path: str = "/") -> httpx.Response:
    with server.client() as http:
        return http.get(path, headers={"Cookie": f"taskyard_session={cookie}"})


def _signed_in(server: Server, cookie: str) -> bool:
    response = _page(server, cookie)
    assert response.status_code in (200, 303)
    return response.status_code == 200


def _form_csrf(page: httpx.Response) -> str:
    found = re.search(r'action="/logout"><input type="hidden" name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


# -- 4. dashboard sessions end ----------------------------------------------------------------


def test_logout_ends_the_session_and_needs_its_csrf_token(secured: Server) -> None:
    assert secured.admin_key is not None
    cookie = _login(secured, secured.admin_key)
    page = _page(secured, cookie)
    assert page.status_code == 200
    csrf = _form_csrf(page)
    with secured.client() as http:
        jar = {"Cookie": f"taskyard_session={cookie}"}
        # 5a: a cross-site form, or one without the token, cannot log anyone out.
        assert http.post("/logout", data={}, headers=jar).status_code == 403
        assert http.post("/logout", data={"csrf": csrf},
                         headers={**jar, "Origin": "https://evil.example"}).status_code == 403
        assert _signed_in(secured, cookie)
        out = http.post("/logout", data={"csrf": csrf}, headers=jar)
        assert out.status_code == 303 and out.headers["location"] == "/login"
    # The cookie itself, replayed after logout, no longer works.
    assert not _signed_in(secured, cookie)


def test_a_session_ends_when_its_key_is_removed_or_the_secret_rotates(start_server: Start) -> None:
    secret, admin, other = secrets.token_urlsafe(48), secrets.token_urlsafe(40), secrets.token_urlsafe(40)

    def env(jwt_secret: str, *keys: str) -> dict[str, str]:
        return {"TASKYARD_HTTP__JWT_SECRET": jwt_secret, "TASKYARD_HTTP__API_KEYS": json.dumps(
            [{"key": k, "role": "admin", "name": f"k{i}"} for i, k in enumerate(keys)])}

    with start_server(env=env(secret, admin, other)) as server:
        cookie = _login(server, admin)
        assert _signed_in(server, cookie)
    with start_server(env=env(secret, admin, other)) as server:  # same config: still signed in
        assert _signed_in(server, cookie)
    with start_server(env=env(secret, other)) as server:  # its key removed
        assert not _signed_in(server, cookie)
    with start_server(env=env(secret, admin, other)) as server:
        cookie = _login(server, admin)
    with start_server(env=env(secrets.token_urlsafe(48), admin, other)) as server:  # rotated
        assert not _signed_in(server, cookie)


def test_an_unused_session_idles_out(start_server: Start) -> None:
    with start_server(env={"TASKYARD_HTTP__SESSION_IDLE_SECONDS": "2"}) as server:
        assert server.admin_key is not None
        cookie = _login(server, server.admin_key)
        used = _page(server, cookie)
        assert used.status_code == 200 and "Max-Age=2" in used.headers["set-cookie"]  # sliding
        # The page's own background refresh does not count as use.
        with server.client() as http:
            auto = http.get("/", headers={"Cookie": f"taskyard_session={cookie}", "X-Taskyard-Refresh": "1"})
        assert "set-cookie" not in auto.headers
        wait_until_sync(lambda: not _signed_in(server, cookie), timeout=15, what="the session to idle out")


# -- 5b. the development token files -----------------------------------------------------------


def test_dev_token_files_are_private_and_never_read_or_written_through_a_symlink(
    start_server: Start, tmp_path: Path
) -> None:
    token_file, secret_file = tmp_path / ".taskyard-token", tmp_path / ".taskyard-dev-secret"
    token_file.write_text("old\n")
    token_file.chmod(0o644)
    # Someone else's file with a secret they know, linked where the dev secret lives.
    planted = tmp_path / "planted"
    known = secrets.token_urlsafe(48)
    planted.write_text(known + "\n")
    planted.chmod(0o600)
    secret_file.symlink_to(planted)
    # Authentication on, no credentials, loopback: the development run writes both files.
    with start_server(auth=False, env={"TASKYARD_HTTP__AUTH_ENABLED": "true"}) as server, server.client() as http:
        assert planted.read_text() == known + "\n"
        for path in (token_file, secret_file):
            assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert http.get("/api/v1/queues", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        forged = issue_token(known, role="admin", ttl=60)
        assert http.get("/api/v1/queues", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


# -- 5c. failed authentication is logged and throttled ----------------------------------------


def test_bad_bearer_tokens_are_logged_and_throttled(start_server: Start) -> None:
    with start_server() as server, server.client() as http:
        bad = [f"probe-bad-{i}-{secrets.token_urlsafe(12)}" for i in range(10)]
        for token in bad:
            assert http.get("/api/v1/queues", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        throttled = http.get("/api/v1/queues", headers=server.admin())  # even a good token now
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
        assert throttled.json()["error"]["code"] == "too_many_requests"
        # The dashboard login shares the count for this address.
        form = http.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        login = http.post("/login", data={"csrf": csrf.group(1), "token": server.admin_key or ""})
        assert login.status_code == 429 and "retry-after" in login.headers

        def logged() -> bool:
            return server.logs().count("authentication failed from 127.0.0.1") >= 10

        wait_until_sync(logged, timeout=10, what="the failures in the log")
        logs = server.logs()
        assert "throttled" in logs and '"taskyard.http.audit"' in logs
        assert not any(token in logs for token in bad)


def test_failed_dashboard_logins_are_throttled(start_server: Start) -> None:
    with start_server() as server, server.client() as http:
        page = http.get("/login")
        codes = []
        for i in range(11):
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf, page.text
            page = http.post("/login", data={"csrf": csrf.group(1), "token": f"guess-{i}"})
            codes.append(page.status_code)  # each answer is a fresh form (a new login nonce)
        assert codes == [401] * 10 + [429]
        assert "Too many failed sign-ins" in page.text
        assert http.get("/api/v1/queues", headers=server.admin()).status_code == 429


# -- 5d/5e. JWT claims -------------------------------------------------------------------------


def test_audience_and_issuer_are_required_when_configured(start_server: Start) -> None:
    claims = {"TASKYARD_HTTP__JWT_AUDIENCE": "taskyard-api", "TASKYARD_HTTP__JWT_ISSUER": "ops"}
    with start_server(env=claims) as server, server.client() as http:
        assert server.secret is not None

        def status(token: str) -> int:
            return http.get("/api/v1/queues", headers={"Authorization": f"Bearer {token}"}).status_code

        assert status(issue_token(server.secret, role="viewer", ttl=60)) == 401
        assert status(issue_token(server.secret, role="viewer", ttl=60, audience="other", issuer="ops")) == 401
        assert status(issue_token(server.secret, role="viewer", ttl=60, audience="taskyard-api", issuer="x")) == 401
        # `taskyard token create` reads the same settings and puts both claims in.
        made = subprocess.run(
            [sys.executable, "-m", "taskyard", "token", "create", "--role", "viewer", "--ttl", "5m"],
            capture_output=True, text=True, check=True, cwd=server.workdir, env=server.env,
        ).stdout.strip()
        assert jwt.decode(made, options={"verify_signature": False})["aud"] == "taskyard-api"
        assert status(made) == 200


def test_a_string_exp_is_refused(secured: Server) -> None:
    assert secured.secret is not None
    with secured.client() as http:
        for exp, expected in (("99999999999", 401), (99999999999, 200)):
            token = jwt.encode({"role": "viewer", "exp": exp}, secured.secret, algorithm="HS256")
            assert http.get("/api/v1/queues", headers={"Authorization": f"Bearer {token}"}).status_code == expected
