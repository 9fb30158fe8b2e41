"""The README's five-minute tour, pasted as written beside a running `make run`: step 2's app
gets its own port and its own database file, so neither run sees (or claims) the other's jobs.
Real processes in a temporary directory; only the fixed port 5051 is swapped for a free one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT
from tests.support.redis import free_port
from tests.support.waiting import wait_until_sync

README = ROOT / "README.md"


def tour() -> tuple[str, list[str]]:
    """Step 2 of the tour: the `tasks.py` it creates and its shell blocks, in order."""
    text = README.read_text()
    step = text[text.index("**2. Write your own app.**"):text.index("**3. Scale out.**")]
    blocks = re.findall(r"```(\w+)\n(.*?)```", step, re.S)
    return next(b for kind, b in blocks if kind == "python"), [b for kind, b in blocks if kind == "sh"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKYARD_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def background(script: str, cwd: Path, log: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run `script` in bash (its own process group) until /health answers on `port`; stop it after."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(["bash", "-ec", script], cwd=cwd, env=_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"{script!r} exited with {proc.returncode}:\n{log.read_text()}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until_sync(up, timeout=60, what=f"{script.splitlines()[-1]!r} to answer /health")
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def tasks_in(workdir: Path, app: str, database: str) -> set[str]:
    """The task names of every job stored in `database` (a file in `workdir`), read by `app`."""
    done = subprocess.run(
        ["taskyard", "--app", app, "--backend", f"sqlite:///{database}", "jobs", "list", "--json"],
        cwd=workdir, env=_env(), capture_output=True, text=True, timeout=60, check=True,
    )
    return {job["task"] for job in json.loads(done.stdout)["jobs"]}


def test_the_tour_runs_beside_make_run_without_sharing_its_port_or_database(tmp_path: Path) -> None:
    tasks_py, blocks = tour()
    lines = [line for block in blocks for line in block.splitlines() if line.strip()]
    exports = [line for line in lines if line.startswith("export ")]
    runs = [line for line in lines if re.match(r"taskyard .* run\b", line)]
    commands = [line for line in lines if line not in exports and line not in runs]
    assert len(runs) == 1 and commands, lines
    assert "--port 5050" not in runs[0] and "--port" in runs[0], "the tour's run needs a port of its own"
    database = next((m.group(1) for line in exports if (m := re.search(r"sqlite:///(\S+)", line))), "taskyard.db")
    assert database != "taskyard.db", "the tour needs a database of its own"
    (tmp_path / "tasks.py").write_text(tasks_py)

    # `make run`: the demo app on the default database (taskyard.db here), on a free port.
    make_run_port, tour_port = free_port(), free_port()
    make_run = f"taskyard --app examples.demo:app run --port {make_run_port}"
    start = "\n".join([*exports, re.sub(r"--port \d+", f"--port {tour_port}", runs[0])])
    with background(make_run, tmp_path, tmp_path / "make-run.log", make_run_port), \
            background(start, tmp_path, tmp_path / "tour.log", tour_port):
        done = subprocess.run(["bash", "-ec", "\n".join([*exports, *commands])], cwd=tmp_path, env=_env(),
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        wait_until_sync(lambda: "darkwatch.scan" in tasks_in(tmp_path, "tasks:app", database),
                        timeout=30, what="the tour's job in its own database")
        assert tasks_in(tmp_path, "tasks:app", database) == {"darkwatch.scan"}
        demo = tasks_in(tmp_path, "examples.demo:app", "taskyard.db")
        assert demo and "darkwatch.scan" not in demo  # make run's jobs, and only those


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh MySQL/MariaDB database's URL (required under CI, skipped elsewhere without one)."""
    from tests.support import mysql

    with asyncio.Runner() as runner:
        database = mysql.isolated_url()
        url = runner.run(database.__aenter__())
        try:
            yield url
        finally:
            runner.run(database.__aexit__(None, None, None))


def test_the_tour_runs_on_mysql(tmp_path: Path, mysql_url: str) -> None:
    """The tour's step 2 with `TASKYARD_BACKEND` set to a MySQL URL (issue 14's acceptance):
    the server starts on it, the enqueued job is run there and the CLI reads it back."""
    tasks_py, blocks = tour()
    lines = [line for block in blocks for line in block.splitlines() if line.strip()]
    (run,) = [line for line in lines if re.match(r"taskyard .* run\b", line)]
    commands = [line for line in lines if not line.startswith("export ") and line != run]
    export = f"export TASKYARD_BACKEND={mysql_url}"
    (tmp_path / "tasks.py").write_text(tasks_py)
    port = free_port()
    with background("\n".join([export, re.sub(r"--port \d+", f"--port {port}", run)]), tmp_path,
                    tmp_path / "tour.log", port):
        done = subprocess.run(["bash", "-ec", "\n".join([export, *commands])], cwd=tmp_path, env=_env(),
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

        def completed() -> bool:
            listed = subprocess.run(
                ["taskyard", "--app", "tasks:app", "--backend", mysql_url, "jobs", "list", "--json",
                 "--status", "completed"],
                cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60, check=True,
            )
            return any(job["task"] == "darkwatch.scan" for job in json.loads(listed.stdout)["jobs"])

        wait_until_sync(completed, timeout=60, what="the tour's job completed in MySQL")
