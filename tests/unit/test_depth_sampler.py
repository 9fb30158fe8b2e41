"""The queue-depth sampler behind the dashboard's chart, and where the server runs it."""

from __future__ import annotations

from datetime import UTC, datetime

from taskyard import FakeClock, Taskyard
from taskyard.config import load_settings
from taskyard.http.dashboard.sampler import DepthSampler
from taskyard.server import TaskServer
from taskyard.testing import drain


async def test_samples_are_stored_as_each_minutes_peak_per_queue() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    app = Taskyard("memory://", clock=clock)

    @app.task("t")
    async def t(payload: dict) -> None: ...

    sampler = DepthSampler(app, clock=clock)
    await app.aenqueue_many([("t", {})] * 3)
    await sampler.execute()
    clock.advance(60)
    await app.aenqueue_many([("t", {})] * 2)
    await sampler.execute()
    # A backlog that drains within the minute still shows as that minute's peak.
    await drain(app)
    clock.advance(15)
    await sampler.execute()
    rows = await app.backend.stats_read_depth(since=datetime(2026, 1, 1, tzinfo=UTC))
    assert [(r.minute.minute, r.queue, r.depth) for r in rows] == [(0, "default", 3), (1, "default", 5)]
    clock.advance(60)
    await sampler.execute()
    rows = await app.backend.stats_read_depth(since=datetime(2026, 1, 1, 12, 2, tzinfo=UTC))
    assert [(r.minute.minute, r.depth) for r in rows] == [(2, 0)]
    await app.aclose()


def test_the_server_samples_depth_only_where_it_serves_the_dashboard() -> None:
    settings = load_settings(backend="memory://")
    with_api = TaskServer(Taskyard("memory://"), settings)
    with_api.build()
    assert "depth-sampler" in [e.id for e in with_api.manager.services()]
    worker_only = TaskServer(Taskyard("memory://"), settings, only="worker")
    worker_only.build()
    assert "depth-sampler" not in [e.id for e in worker_only.manager.services()]
