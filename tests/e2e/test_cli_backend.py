"""`taskyard --backend URL ...` runs the app on URL by handing it to the app (`use_backend`)
and to the server's settings: in-process, so the test sees that `os.environ` stays as it was."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskyard import Taskyard
from taskyard.cli.loading import state
from taskyard.cli.main import cli
from taskyard.core.job import JobStatus

APP_SOURCE = '''
from taskyard import Taskyard

app = Taskyard()  # no URL of its own: TASKYARD_BACKEND, taskyard.toml, else ./taskyard.db


@app.task("double")
def double(payload: dict) -> int:
    return payload["n"] * 2
'''


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh app module in an empty working directory, the CLI's state reset after."""
    name = f"cli_backend_app_{os.getpid()}_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(APP_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("TASKYARD_BACKEND", raising=False)
    monkeypatch.delenv("TASKYARD_APP", raising=False)
    monkeypatch.setattr(state, "app_spec", None)
    monkeypatch.setattr(state, "backend_url", None)
    monkeypatch.setattr(state, "_app", None)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield name
    for handler in [h for h in root.handlers if h not in handlers]:  # the server's, on CliRunner's stream
        root.removeHandler(handler)
    root.setLevel(level)
    if state.app_spec is not None:  # the command loaded the app: close its facade
        state.app.close()
    sys.modules.pop(name, None)


def test_worker_runs_against_the_backend_flag_without_touching_the_environment(
    app_module: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'flag.db'}"
    seeder = Taskyard(url)
    seeder.task("double")(lambda payload: payload["n"] * 2)
    job = seeder.enqueue("double", {"n": 21})
    seeder.close()
    # The flag wins over taskyard.toml too, as it always did through the environment.
    (tmp_path / "taskyard.toml").write_text(f'backend = "sqlite:///{tmp_path / "toml.db"}"\n')
    before = dict(os.environ)

    result = CliRunner().invoke(
        cli, ["--app", f"{app_module}:app", "--backend", url, "worker", "--burst", "--no-maintenance"]
    )

    assert result.exit_code == 0, result.output
    assert dict(os.environ) == before
    assert state.app.backend_url == url
    reader = Taskyard(url)
    try:
        done = reader.get_job(job.id)
    finally:
        reader.close()
    assert done is not None and done.status is JobStatus.COMPLETED and done.result == 42
    # Neither the app's own default nor taskyard.toml's backend was opened.
    assert not (tmp_path / "taskyard.db").exists() and not (tmp_path / "toml.db").exists()
