"""Workflows on the SQLite file itself: the upgrade of a file written before them, and the
cost of settling one parent of a wide fan-in (the conformance suite covers the rules)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskyard.backends.sqlite import SCHEMA_VERSION, SqliteBackend
from taskyard.core.ids import new_id, new_id_after
from taskyard.core.job import JobDraft, JobStatus
from taskyard.core.settle import Settle
from taskyard.core.workflow import Edge, WorkflowDraft, map_step_name

T0 = datetime(2026, 11, 22, 12, tzinfo=UTC)


def _fan_in(width: int) -> WorkflowDraft:
    """`width` parent steps, all joined by one `report` step."""
    wf = new_id()
    ids: list[str] = []
    for _ in range(width + 1):
        ids.append(new_id_after(ids[-1] if ids else None))
    parents = [
        JobDraft(id=ids[i], task="t.fetch", queue="default", payload=i, workflow_id=wf,
                 step=map_step_name("fetch", i))
        for i in range(width)
    ]
    report = JobDraft(id=ids[-1], task="t.report", queue="default", payload=None, workflow_id=wf, step="report")
    edges = tuple(Edge(p.id, report.id) for p in parents)
    return WorkflowDraft(wf, "fan-in", (*parents, report), edges)


async def _instructions_to_settle_one_parent(path: Path, width: int) -> int:
    """SQLite VM instructions run by the settle of the first parent of a `width` fan-in."""
    backend = SqliteBackend(f"sqlite:///{path}")
    await backend.open()
    try:
        await backend.workflow_enqueue(workflow=_fan_in(width), now=T0)
        (job,) = await backend.job_claim(queues=None, limit=1, worker_id="w", lease=30, now=T0)
        counted = [0]

        def count() -> int:
            counted[0] += 1
            return 0

        await backend._db.run(lambda c: c.set_progress_handler(count, 1))
        try:
            answers = await backend.jobs_settle(
                outcomes=[Settle.completed(job.id, job.lease_token or "", None)], now=T0
            )
        finally:
            await backend._db.run(lambda c: c.set_progress_handler(None, 1))
        assert answers[0].owned
        return counted[0]
    finally:
        await backend.close()


async def test_settling_a_parent_of_a_wide_fan_in_costs_what_it_costs_in_a_narrow_one(
    tmp_path: Path,
) -> None:
    # The child asks its index whether an edge is still open; it never reads its other
    # parents' edges, so 999 open siblings cost no more than 9.
    narrow = await _instructions_to_settle_one_parent(tmp_path / "narrow.db", 10)
    wide = await _instructions_to_settle_one_parent(tmp_path / "wide.db", 1000)
    assert wide < narrow * 1.5, (narrow, wide)


@pytest.fixture
def version_4_file(tmp_path: Path) -> Iterator[Path]:
    """A file at schema version 4 (before workflows) holding one pending job."""
    from taskyard.backends.sqlite.schema import MIGRATIONS

    path = tmp_path / "v4.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE taskyard_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO taskyard_schema (version) VALUES (4)")
        for statements in MIGRATIONS[:4]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(
            "INSERT INTO jobs (id, task, queue, payload, status, priority, run_at, attempt, "
            "max_attempts, created_at) VALUES ('01OLDJOB000000000000000000', 't', 'default', "
            "'null', 'pending', 0, 0, 0, 1, 0)"
        )
    yield path


async def test_a_version_4_file_upgrades_to_workflows(version_4_file: Path) -> None:
    backend = SqliteBackend(f"sqlite:///{version_4_file}")
    await backend.open()
    try:
        old = await backend.job_get(job_id="01OLDJOB000000000000000000")
        assert old is not None and old.workflow_id is None and old.step is None and old.meta == {}
        stored = await backend.workflow_enqueue(workflow=_fan_in(2), now=T0)
        assert [j.status for j in stored.steps] == [JobStatus.PENDING, JobStatus.PENDING, JobStatus.BLOCKED]
    finally:
        await backend.close()
    with sqlite3.connect(version_4_file) as conn:
        assert conn.execute("SELECT version FROM taskyard_schema").fetchone()[0] == SCHEMA_VERSION
