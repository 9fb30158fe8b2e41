"""Authentication on with no credentials: a loopback run gets a one-run admin token; any other
address refuses to start."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest

from taskyard import ConfigError, Taskyard
from taskyard.config import load_settings
from taskyard.http.auth import Authenticator, AuthError, Role
from taskyard.server import DEV_SECRET_FILE, DEV_TOKEN_FILE, TaskServer


def test_loopback_run_without_credentials_gets_an_admin_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = TaskServer(Taskyard("memory://"), load_settings(backend="memory://"))
    server.build()
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
    rewrites `.taskyard-token`; the first must accept it too (they share the signing secret)."""
    monkeypatch.chdir(tmp_path)
    first = TaskServer(Taskyard("memory://"), load_settings(backend="memory://"))
    first.build()
    second = TaskServer(Taskyard("memory://"), load_settings(backend="memory://", http={"port": 5051}))
    second.build()
    token = (tmp_path / DEV_TOKEN_FILE).read_text().strip()
    assert token == second.dev_token
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
    server = TaskServer(Taskyard("memory://"), load_settings(backend="memory://"))
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
    TaskServer(Taskyard("memory://"), load_settings(backend="memory://")).build()
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
    server = TaskServer(Taskyard("memory://"), load_settings(backend="memory://"))
    server.build()
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
    server = TaskServer(Taskyard("memory://"), load_settings(backend="memory://"))
    server.build()
    assert server.settings.http.jwt_secret.get_secret_value() != "x" * 64
