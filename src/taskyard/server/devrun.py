"""Development runs: authentication on with no credentials, on loopback — the signing secret
shared by the runs of one directory, and the admin token handed to the operator."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import sys
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from taskyard.config import HttpSettings, Settings
from taskyard.errors import ConfigError
from taskyard.http.auth import (
    Authenticator,
    AuthError,
    Role,
    is_loopback,
    issue_token,
    new_secret,
    weak_secret_reason,
)

__all__ = (
    "DEV_SECRET_FILE",
    "DEV_TOKEN_FILE",
    "DEV_TOKEN_TTL",
    "publish_dev_token",
    "shared_dev_secret",
    "with_dev_credentials",
)

log = logging.getLogger("taskyard.server")

#: Where a development run (auth on, no credentials, loopback) saves its admin token.
DEV_TOKEN_FILE = ".taskyard-token"  # noqa: S105 - a file name, not a secret
#: The signing secret that development runs started in one directory share, so the token in
#: `DEV_TOKEN_FILE` opens every one of them (two `run`s side by side, a restart).
DEV_SECRET_FILE = ".taskyard-dev-secret"  # noqa: S105 - a file name
#: How long the token in `DEV_TOKEN_FILE` is valid (a run reuses it while a day is left).
DEV_TOKEN_TTL = 7 * 86400


def _write_private(path: Path, text: str, *, replace: bool) -> bool:
    """Write `text` to `path` (mode 0600) atomically; with `replace=False`, only if `path`
    does not exist yet (returns False when another process made it first).

    A temporary file in the same directory (created exclusively, never through a symlink)
    is renamed over `path`: a file already there keeps neither its mode nor its content, and
    a symlink at `path` is replaced, not followed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic create-if-absent: two processes starting at once agree
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read_private(path: Path) -> str | None:
    """The text of `path` when it is a regular file of ours that only we may read (not a
    symlink); else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # missing, or a symlink (ELOOP)
        return None
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.getuid():
            return None
        return f.read().strip()


def shared_dev_secret(path: Path = Path(DEV_SECRET_FILE)) -> str:
    """The development signing secret of this directory: read from `path`, or made (48
    random bytes, URL-safe) and saved there with mode 0600 by the first process to start."""
    text = _read_private(path)
    if text is not None and weak_secret_reason(text) is None:
        return text
    # Missing, weak, a symlink, or readable by others: a new one (replacing a bad one).
    secret = new_secret()
    if not _write_private(path, secret, replace=path.is_symlink() or path.exists()):
        text = _read_private(path)
        if text is None or weak_secret_reason(text) is not None:
            raise ConfigError(f"{path}: another process wrote a development secret that cannot be used; remove it")
        return text
    return secret


def with_dev_credentials(s: Settings) -> Settings | None:
    """Authentication on with no credentials configured: on loopback, the settings signing
    with this directory's shared development secret (a development run: the admin token is
    handed out by `publish_dev_token` once the HTTP server serves); elsewhere `ConfigError`.
    None when credentials are configured or authentication is off (not a development run).

    Building alone (`taskyard services list`) writes no token: only a serving process does.
    """
    http = s.http
    if not http.auth_enabled or http.jwt_secret is not None or http.api_keys:
        return None
    if not is_loopback(http.host):
        raise ConfigError(
            "invalid setting 'http.jwt_secret': authentication is on and the server binds "
            f"{http.host!r}, but neither http.jwt_secret nor http.api_keys is set"
        )
    secret = shared_dev_secret()
    return s.model_copy(update={"http": http.model_copy(update={"jwt_secret": SecretStr(secret)})})


def publish_dev_token(http: HttpSettings, *, now: datetime, port: int) -> str:
    """A development run now serves the API on `port`: hand the operator an admin token (in
    `.taskyard-token`, mode 0600, and on the terminal, never in the logs); returns it.

    The token already in the file is kept while it is valid for at least another day
    (another run in this directory wrote it with the same shared secret): the token a
    running server printed stays the one in the file, and every run prints the same one."""
    path = Path(DEV_TOKEN_FILE)
    auth = Authenticator(http)
    existing = _read_private(path)
    token: str | None = None
    if existing:
        with contextlib.suppress(AuthError):
            principal = auth.authenticate(existing, now=now + timedelta(days=1))
            token = existing if principal.role is Role.ADMIN else None
    if token is None:
        secret = http.jwt_secret.get_secret_value() if http.jwt_secret is not None else ""
        token = issue_token(
            secret, role="admin", ttl=DEV_TOKEN_TTL, subject="dev-run",
            audience=http.jwt_audience, issuer=http.jwt_issuer,
        )
        _write_private(path, token, replace=True)
    log.warning(
        "no http.jwt_secret or http.api_keys configured: the admin token is in %s; "
        "development runs started in this directory share its signing secret (%s), so "
        "the token opens each of them. Set http.jwt_secret for anything else", path,
        DEV_SECRET_FILE,
    )
    if sys.stderr.isatty():
        sys.stderr.write(
            f"\n  Dashboard: http://{http.host}:{port}/"
            f"  — sign in with this admin token (also in {path}):\n  {token}\n\n"
        )
    return token
