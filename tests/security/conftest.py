"""Security probes run against a real `taskyard run` process over real HTTP on loopback.

`secured_server()` starts one (SQLite in a temporary directory, the app in
`tests/apps/security_app.py`) with authentication on: a random JWT secret and one admin and one
viewer API key, handed to the process through the environment as an operator would.
`open_server()` starts one with authentication off (allowed on loopback only).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from taskyard.http.auth import issue_token
from tests.support.processes import ROOT, stop_process
from tests.support.redis import free_port
from tests.support.waiting import wait_until_sync

APP = "tests.apps.security_app:app"


@dataclass
class Server:
    """A running server: its base URL, its directory, and the credentials it accepts."""

    url: str
    port: int
    workdir: Path
    log: Path
    process: subprocess.Popen[bytes]
    secret: str | None = None
    admin_key: str | None = None
    viewer_key: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def admin(self) -> dict[str, str]:
        """Headers of an admin caller (a JWT signed with the server's secret)."""
        assert self.secret is not None
        return {"Authorization": "Bearer " + issue_token(self.secret, role="admin", ttl=600, subject="probe-admin")}

    def viewer(self) -> dict[str, str]:
        """Headers of a viewer caller (a JWT signed with the server's secret)."""
        assert self.secret is not None
        return {"Authorization": "Bearer " + issue_token(self.secret, role="viewer", ttl=600, subject="probe-viewer")}

    def client(self, **kw: object) -> httpx.Client:
        """An HTTP client on the server (no redirects followed, so 303s can be checked)."""
        return httpx.Client(base_url=self.url, timeout=10, **kw)  # type: ignore[arg-type]

    def logs(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def run_server(
    workdir: Path,
    *,
    auth: bool = True,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    expect_start: bool = True,
) -> Iterator[Server]:
    """Start `taskyard run` in `workdir` (its own SQLite file), wait until /health answers,
    and stop it afterwards. With `expect_start=False` the process is only started (a test
    checks that it refuses to run)."""
    port = free_port()
    secret = secrets.token_urlsafe(48)
    admin_key, viewer_key = secrets.token_urlsafe(40), secrets.token_urlsafe(40)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TASKYARD_")}
    full_env.update(
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        TASKYARD_APP=APP,
        TASKYARD_BACKEND=f"sqlite:///{workdir / 'taskyard.db'}",
        TASKYARD_LOGGING__FORMAT="json",
    )
    if auth:
        full_env.update(
            TASKYARD_HTTP__JWT_SECRET=secret,
            TASKYARD_HTTP__API_KEYS=json.dumps([
                {"key": admin_key, "role": "admin", "name": "ops"},
                {"key": viewer_key, "role": "viewer", "name": "grafana"},
            ]),
        )
    else:
        full_env["TASKYARD_HTTP__AUTH_ENABLED"] = "false"
    full_env.update(env or {})
    log = workdir / "server.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskyard", "run", "--port", str(port), *args],
            cwd=workdir, env=full_env, stdout=out, stderr=subprocess.STDOUT,
        )
    server = Server(
        url=f"http://127.0.0.1:{port}", port=port, workdir=workdir, log=log, process=process,
        secret=secret if auth else None,
        admin_key=admin_key if auth else None,
        viewer_key=viewer_key if auth else None,
        env=full_env,
    )
    try:
        if expect_start:
            def up() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"taskyard run exited with {process.returncode}:\n{server.logs()}")
                try:
                    return httpx.get(server.url + "/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until_sync(up, timeout=30, what="the server to answer /health")
        yield server
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with authentication on, shared by a module's probes."""
    with run_server(tmp_path_factory.mktemp("secured")) as server:
        yield server


@pytest.fixture(scope="module")
def unsecured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with authentication off (loopback), shared by a module's probes."""
    with run_server(tmp_path_factory.mktemp("unsecured"), auth=False) as server:
        yield server


@pytest.fixture
def start_server(tmp_path: Path) -> Callable[..., contextlib.AbstractContextManager[Server]]:
    """`with start_server(auth=..., env=...) as server:` — a server of the test's own."""
    return lambda **kw: run_server(tmp_path, **kw)
