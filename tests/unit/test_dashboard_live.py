"""The dashboard's live snapshot (http/dashboard/live.py): what `/live` sends and accepts."""

from __future__ import annotations

import pytest

from taskyard import Taskyard
from taskyard.config import load_settings
from taskyard.http.context import HttpContext
from taskyard.http.dashboard.live import MAX_JOBS, job_ids, snapshot


def test_job_ids_are_checked_and_deduplicated() -> None:
    assert job_ids(None) == [] and job_ids("") == []
    a, b = "01" + "A" * 24, "01" + "B" * 24
    assert job_ids(f"{a},{a},{b}") == [a, b]
    with pytest.raises(ValueError, match="'x y' is not a job id"):
        job_ids(f"{a},x y")
    with pytest.raises(ValueError, match=f"at most {MAX_JOBS}"):
        job_ids(",".join([a] * (MAX_JOBS + 1)))


async def test_a_snapshot_counts_and_follows_jobs() -> None:
    app = Taskyard("memory://")

    @app.task("t", queue="q")
    async def t(payload: dict) -> None: ...

    job = await app.aenqueue("t", {})
    ctx = HttpContext(app=app, manager=None, settings=load_settings(backend="memory://"))
    missing = "01" + "Z" * 24
    snap = await snapshot(ctx, [job.id, missing])
    assert snap["totals"]["pending"] == 1
    assert snap["queues"]["q"]["pending"] == 1
    assert snap["jobs"][job.id] == {"status": "pending", "attempt": 0, "progress": None}
    assert snap["jobs"][missing] is None
    await app.aclose()
