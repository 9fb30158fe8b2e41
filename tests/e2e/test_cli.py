"""`taskyard` at the command line, as a user runs it (subprocesses on a SQLite file, and a
PostgreSQL schema for `migrate`): ids that paste, no phantom queues, a duplicate unique key
said as such, and `migrate` saying what it did."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from taskyard.backends.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from tests.support import postgres
from tests.support.processes import ROOT

APP = "tests.apps.scheduler_app:app"  # task "tick" on queue "ticks"


def taskyard(
    url: str, *args: str, columns: int = 200, app: str | None = APP
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TASKYARD_BACKEND": url, "COLUMNS": str(columns)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    head = ["--app", app] if app else []
    return subprocess.run(
        [sys.executable, "-m", "taskyard", *head, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_jobs_list_never_cuts_an_id_even_in_a_narrow_terminal(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    for n in range(3):
        assert taskyard(url, "enqueue", "tick", json.dumps({"n": n})).returncode == 0
    ids = [j["id"] for j in json.loads(taskyard(url, "jobs", "list", "--json").stdout)["jobs"]]
    assert len(ids) == 3
    listed = taskyard(url, "jobs", "list", columns=60)
    assert listed.returncode == 0, listed.stderr
    for job_id in ids:
        assert job_id in listed.stdout, f"id {job_id} cut in:\n{listed.stdout}"
    pasted = taskyard(url, "jobs", "show", ids[0], "--json")
    assert pasted.returncode == 0 and json.loads(pasted.stdout)["id"] == ids[0]


def test_pausing_an_unknown_queue_is_an_error_not_a_new_queue(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    refused = taskyard(url, "queues", "pause", "nosuchqueue")
    assert refused.returncode == 1
    assert "no queue named 'nosuchqueue'" in refused.stderr and "ticks" in refused.stderr
    assert taskyard(url, "queues", "resume", "nosuchqueue").returncode == 1
    queues = json.loads(taskyard(url, "queues", "--json").stdout)
    assert "nosuchqueue" not in {q["queue"] for q in queues}
    assert taskyard(url, "queues", "pause", "ticks").returncode == 0  # a task's queue is known
    queues = json.loads(taskyard(url, "queues", "--json").stdout)
    assert [q["paused"] for q in queues if q["queue"] == "ticks"] == [True]


def test_enqueue_of_a_held_unique_key_says_it_was_not_enqueued_again(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    first = taskyard(url, "enqueue", "tick", "{}", "--unique-key", "report:7")
    assert first.returncode == 0, first.stderr
    first_id = first.stdout.split()[0]
    assert "not enqueued" not in first.stdout
    again = taskyard(url, "enqueue", "tick", '{"other": 1}', "--unique-key", "report:7")
    assert again.returncode == 0, again.stderr
    assert again.stdout.split()[0] == first_id
    assert "not enqueued again" in again.stdout and "'report:7'" in again.stdout
    as_json = json.loads(
        taskyard(url, "enqueue", "tick", "{}", "--unique-key", "report:7", "--json").stdout
    )
    assert (as_json["id"], as_json["enqueued"]) == (first_id, False)
    assert len(json.loads(taskyard(url, "jobs", "list", "--json").stdout)["jobs"]) == 1


def test_migrate_says_whether_it_created_upgraded_or_found_the_sqlite_schema(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    created = taskyard(url, "migrate", app=None)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"created the schema (version {SCHEMA_VERSION})"
    again = taskyard(url, "migrate", app=None)
    assert again.stdout.strip() == (
        f"the schema is already current (version {SCHEMA_VERSION}); nothing to do"
    )
    # A file written by the previous taskyard: every migration but the last.
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE taskyard_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO taskyard_schema (version) VALUES (?)", (SCHEMA_VERSION - 1,))
        for statements in MIGRATIONS[:-1]:
            for statement in statements:
                conn.execute(statement)
    conn.close()
    upgraded = taskyard(f"sqlite:///{old}", "migrate", app=None)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == (
        f"upgraded the schema from version {SCHEMA_VERSION - 1} to {SCHEMA_VERSION}"
    )


async def test_migrate_says_it_created_then_found_the_postgres_schema() -> None:
    async with postgres.isolated_url() as url:
        created = taskyard(url, "migrate", app=None)
        assert created.returncode == 0, created.stderr
        assert created.stdout.strip().startswith("created the schema (version ")
        again = taskyard(url, "migrate", app=None)
        assert "already current" in again.stdout
