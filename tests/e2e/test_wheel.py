"""The built wheel in a fresh venv: `taskyard --help`, a round trip on SQLite, and a clear
error naming the extra for a backend whose driver the SQLite-only install lacks. Building the
wheel and the venv is slow, so it is done once per suite (one module fixture, one xdist group)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheel"), pytest.mark.timeout(600)]

APP = '''
from taskyard import Taskyard

app = Taskyard()

@app.task("double")
def double(payload: dict) -> int:
    return payload["n"] * 2
'''


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**_clean_env(), **(env or {})},
    )
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _clean_env() -> dict[str, str]:
    """This environment without what would make the venv see the checkout."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "TASKYARD_BACKEND")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel built from this checkout installed (no extras)."""
    work = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", work / "dist", ROOT, cwd=work)
    wheels = list((work / "dist").glob("taskyard-*.whl"))
    assert len(wheels) == 1, wheels
    _run(sys.executable, "-m", "venv", work / "venv", cwd=work)
    _run(work / "venv" / "bin" / "python", "-m", "pip", "install", "-q", wheels[0], cwd=work, timeout=540)
    yield work / "venv"


def test_the_wheel_installs_the_cli_and_no_driver_of_an_extra(venv: Path, tmp_path: Path) -> None:
    out = _run(venv / "bin" / "taskyard", "--help", cwd=tmp_path)
    assert "Usage" in out and "worker" in out
    installed = _run(venv / "bin" / "python", "-m", "pip", "list", "--format=freeze", cwd=tmp_path).lower()
    names = {line.partition("==")[0] for line in installed.split()}
    assert not names & {"psycopg", "psycopg-binary", "psycopg-pool", "redis", "django"}, names
    assert list(venv.glob("lib/python3*/site-packages/taskyard/py.typed")), "py.typed is not in the wheel"


def test_a_round_trip_on_sqlite(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "jobsapp.py").write_text(APP)
    env = {"TASKYARD_BACKEND": f"sqlite:///{tmp_path / 'jobs.db'}", "PYTHONPATH": str(tmp_path)}
    python = venv / "bin" / "python"
    job_id = _run(python, "-c", "from jobsapp import app; print(app.enqueue('double', {'n': 21}).id)",
                  cwd=tmp_path, env=env).strip()
    _run(venv / "bin" / "taskyard", "--app", "jobsapp:app", "worker", "--burst", cwd=tmp_path, env=env)
    check = textwrap.dedent(f"""
        from jobsapp import app
        job = app.get_job({job_id!r})
        print(job.status.value, job.result)
    """)
    assert _run(python, "-c", check, cwd=tmp_path, env=env).split() == ["completed", "42"]


@pytest.mark.parametrize(("url", "extra"), [
    ("postgresql://postgres@127.0.0.1:5432/test", "postgres"),
    ("redis://127.0.0.1:6379/0", "redis"),
])
def test_a_backend_without_its_driver_names_the_extra(venv: Path, tmp_path: Path, url: str, extra: str) -> None:
    script = f"from taskyard import Taskyard\nTaskyard({url!r}).backend\n"
    done = subprocess.run([str(venv / "bin" / "python"), "-c", script], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=_clean_env())
    assert done.returncode == 1
    assert f"pip install 'taskyard[{extra}]'" in done.stderr, done.stderr
