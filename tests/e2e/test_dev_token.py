"""Authentication on with no credentials: a loopback run that serves the API gets an admin
token (kept across runs in one directory); any other address refuses to start."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from taskyard import ConfigError, Taskyard
from taskyard.config import load_settings
from taskyard.http.auth import Authenticator, AuthError, Role
from taskyard.server import DEV_SECRET_FILE, DEV_TOKEN_FILE, TaskServer
from tests.security.conftest import APP, Server, run_server
from tests.support.processes import ROOT
from tests.support.waiting import wait_until_sync

DEV = {"TASKYARD_HTTP__AUTH_ENABLED": "true"}  # on, with no secret and no keys


def serve_once(server: TaskServer) -> None:
    """Start the server (HTTP on a free port) and stop it again: what a short `taskyard run` does."""

    async def run() -> None:
        try:
            await server.start()
        finally:
            await server.stop()

    asyncio.run(run())


def _local(**http: object) -> TaskServer:
    return TaskServer(Taskyard("memory://"), load_settings(backend="memory://", http={"port": 0, **http}))


def test_building_alone_writes_no_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`taskyard services list` builds a server without starting it: no token is handed out."""
    monkeypatch.chdir(tmp_path)
    server = _local()
    server.build()
    assert server.dev_token is None and not (tmp_path / DEV_TOKEN_FILE).exists()


def test_loopback_run_without_credentials_gets_an_admin_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = _local()
    serve_once(server)
    token_file = tmp_path / DEV_TOKEN_FILE
    assert server.dev_token and token_file.read_text().strip() == server.dev_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    auth = Authenticator(server.settings.http)
    assert auth.authenticate(server.dev_token).role is Role.ADMIN
    with pytest.raises(AuthError):
        auth.authenticate(server.dev_token[:-2] + "xx")


def test_configured_secret_is_kept_and_no_token_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    secret = secrets.token_urlsafe(48)
    settings = load_settings(backend="memory://", http={"jwt_secret": secret})
    server = TaskServer(Taskyard("memory://"), settings)
    server.build()
    assert server.dev_token is None and not (tmp_path / DEV_TOKEN_FILE).exists()
    assert server.settings.http.jwt_secret.get_secret_value() == secret


def test_other_address_without_credentials_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(backend="memory://", http={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match=r"http\.jwt_secret"):
        TaskServer(Taskyard("memory://"), settings).build()
    assert not (tmp_path / DEV_TOKEN_FILE).exists()


def test_two_runs_in_one_directory_accept_the_token_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README tour: `make run` and a second app's `run --port 5051` side by side. The second
    keeps the token in `.taskyard-token`, and both accept it (they share the signing secret)."""
    monkeypatch.chdir(tmp_path)
    first = _local()
    serve_once(first)
    second = _local()
    serve_once(second)
    token = (tmp_path / DEV_TOKEN_FILE).read_text().strip()
    assert token == first.dev_token == second.dev_token
    for server in (first, second):
        assert Authenticator(server.settings.http).authenticate(token).role is Role.ADMIN
    secret_file = tmp_path / DEV_SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_shared_secret_readable_by_others_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    secret_file = tmp_path / DEV_SECRET_FILE
    readable = secrets.token_urlsafe(48)
    secret_file.write_text(readable + "\n")
    secret_file.chmod(0o644)
    server = _local()
    server.build()
    assert server.settings.http.jwt_secret.get_secret_value() != readable
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_token_file_is_rewritten_private_and_symlinks_are_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    token_file = tmp_path / DEV_TOKEN_FILE
    token_file.write_text("old\n")
    token_file.chmod(0o644)
    serve_once(_local())
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and token_file.read_text() != "old\n"

    # Symlinks at both targets (an attacker's file, a secret they know): replaced, not used.
    victim, planted = tmp_path / "victim", tmp_path / "planted"
    victim.write_text("untouched\n")
    victim.chmod(0o644)
    planted.write_text(secrets.token_urlsafe(48) + "\n")
    planted.chmod(0o600)
    token_file.unlink()
    token_file.symlink_to(victim)
    (tmp_path / DEV_SECRET_FILE).unlink()
    (tmp_path / DEV_SECRET_FILE).symlink_to(planted)
    server = _local()
    serve_once(server)
    assert victim.read_text() == "untouched\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    for path in (token_file, tmp_path / DEV_SECRET_FILE):
        assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token_file.read_text().strip() == server.dev_token
    assert server.settings.http.jwt_secret.get_secret_value() != planted.read_text().strip()


def test_a_weak_shared_secret_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    secret_file = tmp_path / DEV_SECRET_FILE
    secret_file.write_text("x" * 64 + "\n")  # private, long, and worthless
    secret_file.chmod(0o600)
    server = _local()
    server.build()
    assert server.settings.http.jwt_secret.get_secret_value() != "x" * 64


# -- real processes: `make run` and the README tour side by side --------------------------------


def _cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`taskyard ARGS` run to completion in `workdir`, on its SQLite file, auth on, no credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKYARD_")}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        TASKYARD_APP=APP, TASKYARD_BACKEND=f"sqlite:///{workdir / 'taskyard.db'}", **DEV,
    )
    return subprocess.run([sys.executable, "-m", "taskyard", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _token_of(server: Server) -> str:
    path = server.workdir / DEV_TOKEN_FILE
    return str(wait_until_sync(lambda: path.exists() and path.read_text().strip(), timeout=30,
                               what="the development token file"))


def _status(server: Server, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(server.url + "/api/v1/queues", headers=headers, timeout=10).status_code


def test_only_serving_runs_write_the_token_and_a_second_run_keeps_the_first_ones(tmp_path: Path) -> None:
    token_file = tmp_path / DEV_TOKEN_FILE
    listed = _cli(tmp_path, "services", "list")
    assert listed.returncode == 0, listed.stderr
    assert not token_file.exists(), "a command that serves nothing wrote the token file"

    with run_server(tmp_path, auth=False, env=DEV) as first:
        token = _token_of(first)
        assert _status(first, token) == 200
        before = token_file.stat()
        for args in (("services", "list"), ("queues",)):
            done = _cli(tmp_path, *args)
            assert done.returncode == 0, done.stderr
        after = token_file.stat()
        assert token_file.read_text().strip() == token
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

        # A second run in the same directory (the README tour's `run --port 5051`).
        with run_server(tmp_path, auth=False, env=DEV) as second:
            wait_until_sync(lambda: second.logs().count("the admin token is in") >= 2, timeout=30,
                            what="the second run to hand out its token")
            assert token_file.read_text().strip() == token
            assert _status(first, token) == 200 and _status(second, token) == 200
        assert _status(first, token) == 200
        assert token not in first.logs()


def _hint(server: Server) -> str:
    page = httpx.get(server.url + "/login", timeout=10)
    found = re.search(r'<p class="muted" id="sign-in-hint">(.*?)</p>', page.text, re.S)
    assert found, page.text
    return found.group(1)


def test_the_sign_in_hint_names_what_works_for_this_run(tmp_path: Path) -> None:
    dev_dir, configured_dir = tmp_path / "dev", tmp_path / "configured"
    dev_dir.mkdir()
    configured_dir.mkdir()
    with run_server(dev_dir, auth=False, env=DEV) as dev:
        hint = _hint(dev)
        assert DEV_TOKEN_FILE in hint and "token create" not in hint
    with run_server(configured_dir) as secured:
        assert "taskyard token create" in _hint(secured)
