"""`taskyard schedules ...` as a user runs it: subprocesses on a SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT

APP = "tests.apps.scheduler_app:app"


def taskyard(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TASKYARD_BACKEND": f"sqlite:///{tmp_path / 'cli.db'}", "COLUMNS": "200"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "taskyard", "--app", APP, "schedules", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_schedules_commands(tmp_path: Path) -> None:
    added = taskyard(tmp_path, "add", "weekly", "--task", "tick", "--cron", "0 9 * * 1",
                     "--tz", "Europe/Paris", "--payload", '{"a": 1}', "--owner", "o:1", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["cron"] == "0 9 * * 1"

    bad = taskyard(tmp_path, "add", "bad", "--task", "tick", "--cron", "0 9 * * 1", "--tz", "Mars/Base")
    assert bad.returncode == 2 and "unknown time zone" in bad.stderr
    unknown = taskyard(tmp_path, "add", "bad", "--task", "nope", "--every", "5")
    assert unknown.returncode == 2 and "unknown task 'nope'" in unknown.stderr

    listed = taskyard(tmp_path, "list", "--owner", "o:1", "--json")
    assert [s["name"] for s in json.loads(listed.stdout)] == ["weekly"]
    fires = json.loads(taskyard(tmp_path, "next", "weekly", "-n", "3", "--json").stdout)
    assert len(fires) == 3 and all(f.endswith("+00:00") for f in fires)
    job = json.loads(taskyard(tmp_path, "trigger", "weekly", "--json").stdout)
    assert job["task"] == "tick" and job["unique_key"].startswith("schedule:weekly:")

    assert taskyard(tmp_path, "pause", "weekly").returncode == 0
    assert json.loads(taskyard(tmp_path, "list", "--json").stdout)[0]["enabled"] is False
    assert taskyard(tmp_path, "resume", "weekly").returncode == 0
    table = taskyard(tmp_path, "list")
    assert "weekly" in table.stdout and "enabled" in table.stdout
    assert taskyard(tmp_path, "remove", "weekly").returncode == 0
    missing = taskyard(tmp_path, "remove", "weekly")
    assert missing.returncode == 1 and "no schedule named 'weekly'" in missing.stderr


def test_schedules_add_takes_misfire_grace(tmp_path: Path) -> None:
    added = taskyard(tmp_path, "add", "graceful", "--task", "tick", "--every", "60",
                     "--misfire-grace", "7.5", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["misfire_grace"] == 7.5
    listed = json.loads(taskyard(tmp_path, "list", "--json").stdout)
    assert listed[0]["misfire_grace"] == 7.5
    negative = taskyard(tmp_path, "add", "bad", "--task", "tick", "--every", "60", "--misfire-grace", "-1")
    assert negative.returncode == 2 and "misfire_grace must be >= 0" in negative.stderr
