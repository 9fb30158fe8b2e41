"""The queue-depth sampler behind the dashboard's chart, and where the server runs it."""

from __future__ import annotations

from datetime import UTC, datetime

from taskyard import FakeClock, Taskyard
from taskyard.config import load_settings
from taskyard.http.dashboard.charts import DepthHistory
from taskyard.http.dashboard.sampler import DepthSampler
from taskyard.server import TaskServer
from taskyard.testing import drain


async def test_samples_fill_the_chart_without_anyone_looking() -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))  # samples at :00:00, :01:00, :01:15
    app = Taskyard("memory://", clock=clock)

    @app.task("t")
    async def t(payload: dict) -> None: ...

    history = DepthHistory()
    sampler = DepthSampler(app, history, clock=clock)
    await app.aenqueue_many([("t", {})] * 3)
    await sampler.execute()
    clock.advance(60)
    await app.aenqueue_many([("t", {})] * 2)
    await sampler.execute()
    chart = history.chart(clock.now())
    assert chart.total == 5
    assert chart.peak == 5 and len([b for b in chart.bars if b.h > 0]) == 2  # two minutes sampled
    # A backlog that drains within the minute still shows as that minute's peak.
    await drain(app)
    clock.advance(15)
    await sampler.execute()
    chart = history.chart(clock.now())
    assert chart.total == 0 and chart.peak == 5
    await app.aclose()


def test_the_server_samples_depth_only_where_it_serves_the_dashboard() -> None:
    settings = load_settings(backend="memory://")
    with_api = TaskServer(Taskyard("memory://"), settings)
    with_api.build()
    assert "depth-sampler" in [e.id for e in with_api.manager.services()]
    worker_only = TaskServer(Taskyard("memory://"), settings, only="worker")
    worker_only.build()
    assert "depth-sampler" not in [e.id for e in worker_only.manager.services()]


def test_a_page_view_within_ten_seconds_never_lowers_the_sampled_peak() -> None:
    history = DepthHistory()
    at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    history.record(at, 28)  # the sampler, mid-backlog
    history.record(at.replace(second=3), 5)  # a page view three seconds later
    chart = history.chart(at.replace(second=30))
    assert chart.peak == 28 and chart.total == 5
