"""The Django integration (taskyard.contrib.django) under both of its frameworks: the example
project's own test suite (`python manage.py test`, Django's runner) on SQLite and PostgreSQL,
with the django-tasks backport on this venv (Django 4.2-5.2) and with Django 6's
`django.tasks` in `.venv-django6` (Python >= 3.12, made by `make django6`)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support.processes import ROOT
from tests.support.servers import POSTGRES_URL, unavailable

pytestmark = pytest.mark.slow
SITE = ROOT / "examples" / "django_site"


def _python(leg: str) -> str:
    if leg == "backport":
        if importlib.util.find_spec("django_tasks") is None:
            unavailable("the django-tasks backport", "not installed in this venv: pip install -e '.[django]'")
        return sys.executable
    python = ROOT / ".venv-django6" / "bin" / "python"
    if not python.exists():
        unavailable("Django 6 (.venv-django6)", "no venv: run `make django6` (needs Python >= 3.12)")
    return str(python)


def _check_postgres() -> None:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {POSTGRES_URL}", str(exc).strip().splitlines()[0])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("db", ["sqlite", "postgres"])
@pytest.mark.parametrize("leg", ["backport", "django6"])
def test_the_example_projects_tests_pass(leg: str, db: str, tmp_path: Path) -> None:
    python = _python(leg)
    if db == "postgres":
        _check_postgres()
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("TASKYARD_", "DJANGO_")) and key != "PYTHONPATH"
    }
    env.update(
        DJANGO_SITE_DB=db, DJANGO_SITE_POSTGRES_URL=POSTGRES_URL, TMPDIR=str(tmp_path),
        TASKYARD_URL=f"sqlite:///{tmp_path / 'taskyard.db'}" if db == "sqlite" else "",
    )
    if not env["TASKYARD_URL"]:
        del env["TASKYARD_URL"]
    done = subprocess.run(
        [python, "manage.py", "test", "--noinput"], cwd=SITE, env=env,
        capture_output=True, text=True, timeout=280, check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    ran = re.search(r"^Ran (\d+) tests? ", output, re.MULTILINE)
    assert ran is not None and int(ran.group(1)) >= 10, output
