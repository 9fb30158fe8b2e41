"""`taskyard workflows [list]|show|cancel|retry`, in-process (CliRunner) on the app's own
backend: the ids paste from the listing into `show`, `--json` carries steps and edges, and
cancel / retry act on the whole workflow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskyard import Taskyard
from taskyard.cli.loading import state
from taskyard.cli.main import cli
from taskyard.testing import drain
from tests.support.workflows import WORKFLOW_KINDS, workflow_app


@pytest.fixture(params=WORKFLOW_KINDS)
def app(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Taskyard]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'cli.db'}"
    app = workflow_app(url)
    monkeypatch.setattr(state, "_app", app)  # what `--app MODULE:APP` would have loaded
    yield app
    app.close()


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_workflows_list_show_cancel_and_retry(app: Taskyard) -> None:
    wf = app.workflow("nightly")
    fetch = wf.map("wf.fetch", [{"n": 1}, {"n": -1}], name="fetch")
    wf.step("wf.total", None, name="total", after={fetch: "continue"})
    done = wf.enqueue()
    asyncio.run(drain(app))
    wf = app.workflow("later")
    first = wf.step("wf.fetch", {"n": 2}, name="first", delay=3600)
    wf.step("wf.total", None, name="total", after=first)
    later = wf.enqueue()

    listing = run("workflows")
    assert done.id in listing and later.id in listing  # never cut, however narrow the terminal
    assert run("workflows", "list", "--limit", "1", "--json").count('"id"') == 1
    as_json = json.loads(run("workflows", "--json"))
    assert [(w["id"], w["name"], w["status"]) for w in as_json["workflows"]] == [
        (later.id, "later", "running"), (done.id, "nightly", "failed"),
    ]

    shown = run("workflows", "show", done.id)
    lines = {line.split()[0]: line for line in shown.splitlines()[2:]}
    assert lines["fetch[1]"].endswith("failed  1/1  ValueError: no square for -1")
    assert "after fetch[0] (continue, done), fetch[1] (continue, done)" in lines["total"]
    assert all(j.id in lines[j.step or ""] for j in done.steps)
    detail = json.loads(run("workflows", "show", done.id, "--json"))
    assert detail["status"] == "failed" and len(detail["steps"]) == 3 and len(detail["edges"]) == 2

    assert "cancelled" in run("workflows", "cancel", later.id)
    retried = json.loads(run("workflows", "retry", later.id, "--json"))
    assert retried["status"] == "running" and [s["status"] for s in retried["steps"]] == ["pending", "blocked"]


def test_an_unknown_workflow_is_an_error_naming_it(app: Taskyard) -> None:
    for args in (["show", "01M831ZZHYQ2TZ80B4QPZGTAF6"], ["cancel", "01M831ZZHYQ2TZ80B4QPZGTAF6"]):
        result = CliRunner().invoke(cli, ["workflows", *args])
        assert result.exit_code == 1
        assert "no workflow with id '01M831ZZHYQ2TZ80B4QPZGTAF6'" in result.output
