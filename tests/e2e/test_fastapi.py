"""A user's FastAPI app served by a real uvicorn process (examples/fastapi_app.py): its lifespan
opens and closes taskyard's backend, its routes enqueue, a `taskyard worker` runs the jobs, and
taskyard's management API answers under `/taskyard` — also to a client that
`openapi-python-client` generates from the mounted API's OpenAPI document."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, stop_process
from tests.support.redis import free_port
from tests.support.waiting import wait_until_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@dataclass
class Served:
    """The example running under uvicorn."""

    base: str
    env: dict[str, str]
    headers: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port, key = free_port(), secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
        "TASKYARD_BACKEND": f"sqlite:///{tmp_path / 'jobs.db'}",
        "TASKYARD_HTTP__PORT": str(port),
        "TASKYARD_HTTP__API_KEYS": json.dumps([{"key": key, "role": "admin", "name": "test"}]),
    }
    log = tmp_path / "uvicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.fastapi_app:api", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"uvicorn exited {proc.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(base + "/taskyard/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until_sync(answers, timeout=60, what="uvicorn to serve /taskyard/health")
        yield Served(base, env, {"Authorization": f"Bearer {key}"}, proc, log)
    finally:
        if proc.poll() is None:
            stop_process(proc, signal.SIGTERM)


def _run_worker(served: Served, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taskyard", "--app", "examples.fastapi_app:app", "worker", "--burst"],
        cwd=cwd, env=served.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_users_routes_enqueue_and_the_mounted_api_reads(served: Served, tmp_path: Path) -> None:
    with httpx.Client(base_url=served.base, timeout=10) as http:
        answer = http.post("/signup", json={"email": "ada@example.com"})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]
        assert http.get(f"/signup/{job_id}").json() == {"status": "pending"}
        # The management API is under the prefix, behind taskyard's authentication.
        assert http.get(f"/taskyard/api/v1/jobs/{job_id}").status_code == 401
        job = http.get(f"/taskyard/api/v1/jobs/{job_id}", headers=served.headers)
        assert job.status_code == 200 and job.json()["task"] == "welcome.send"
        assert http.get(f"/api/v1/jobs/{job_id}", headers=served.headers).status_code == 404

        _run_worker(served, tmp_path)
        assert http.get(f"/signup/{job_id}").json() == {"status": "completed"}
        done = http.get(f"/taskyard/api/v1/jobs/{job_id}", headers=served.headers).json()
        assert done["status"] == "completed" and done["result"] == "welcomed ada@example.com"
    # The lifespan closed the backend: uvicorn ends cleanly, without asyncio's complaints.
    # (uvicorn re-raises the signal once it has shut down gracefully.)
    assert stop_process(served.proc, signal.SIGTERM) in (0, -signal.SIGTERM)
    output = served.log.read_text()
    assert "Application shutdown complete" in output
    assert "Task was destroyed" not in output and "Traceback" not in output, output


GENERATED_ROUND_TRIP = """
import sys
from taskyard_client import AuthenticatedClient
from taskyard_client.api.jobs import enqueue_job, get_job
from taskyard_client.models import EnqueueRequest

base, token = sys.argv[1], sys.argv[2]
with AuthenticatedClient(base_url=base, token=token) as client:
    body = EnqueueRequest.from_dict({"task": "welcome.send", "payload": {"email": "bob@example.com"}})
    created = enqueue_job.sync(client=client, body=body)
    fetched = get_job.sync(created.id, client=client)
    print(created.id, fetched.id, fetched.task, fetched.status)
"""


def test_a_generated_client_round_trips(served: Served, tmp_path: Path) -> None:
    document = httpx.get(served.base + "/taskyard/api/v1/openapi.json", headers=served.headers, timeout=10)
    assert document.status_code == 200
    (tmp_path / "openapi.json").write_text(document.text)
    generator = Path(sys.executable).parent / "openapi-python-client"
    done = subprocess.run(
        [str(generator), "generate", "--path", "openapi.json", "--meta", "none",
         "--output-path", "taskyard_client"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # Named after the operationIds, not FastAPI's defaults (enqueue_api_v1_jobs_post).
    assert (tmp_path / "taskyard_client" / "api" / "jobs" / "enqueue_job.py").is_file()
    run = subprocess.run(
        [sys.executable, "-c", GENERATED_ROUND_TRIP, served.base + "/taskyard", served.headers["Authorization"][7:]],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    created, fetched, task, status = run.stdout.split()
    assert created == fetched and task == "welcome.send" and status == "pending"
