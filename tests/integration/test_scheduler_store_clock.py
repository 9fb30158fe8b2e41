"""A scheduler whose machine clock is minutes off fires by the store's clock (PostgreSQL
`clock_timestamp()`, Redis `TIME`): neither early nor late, and its sleeps follow that clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskyard import Taskyard
from taskyard.clock import SystemClock
from taskyard.core.job import JobFilter
from taskyard.services.scheduler import Scheduler
from tests.support.backends import isolated_url

pytestmark = pytest.mark.slow


class SkewedClock(SystemClock):
    """The real clock, shifted: what a machine whose clock runs `offset` ahead reports."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.mark.parametrize("skew", [timedelta(minutes=3), timedelta(minutes=-3)], ids=["ahead", "behind"])
@pytest.mark.parametrize("kind", ["postgres", "redis", "mysql"])
async def test_fires_follow_the_stores_clock(kind: str, skew: timedelta, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        clock = SkewedClock(skew)
        app = Taskyard(url, clock=clock)

        @app.task("tick")
        async def tick(payload: dict) -> None: ...

        await app.open()
        try:
            await app.schedules.aadd("every-second", task="tick", every=1, misfire="all")
            real = datetime.now(UTC)
            stored = await app.schedules.aget("every-second")
            assert stored is not None and stored.next_fire_at is not None
            scheduler = Scheduler(app, None)
            now = await scheduler.now()
            assert abs((now - real).total_seconds()) < 2, "the scheduler's now is the store's"
            # The schedule was stored from the skewed clock (an API call on that machine), so
            # pin it to the store's next minute, then check the pass neither fires early nor
            # sleeps by the skewed clock.
            due = (now + timedelta(seconds=30)).replace(microsecond=0)
            await app.backend.schedule_upsert(schedule=stored.replace(next_fire_at=due))
            delay = await scheduler.tick()
            jobs = (await app.backend.jobs_list(filter=JobFilter(), limit=10)).jobs
            assert jobs == [], "fired early by a clock that runs ahead"
            expected = min((due - now).total_seconds(), scheduler.config.tick_interval)
            assert abs(delay - expected) < 2, (delay, expected)
            # Once the store's clock reaches a fire time the pass fires it, and nothing later.
            fire = (await scheduler.now()).replace(microsecond=0) - timedelta(seconds=1)
            await app.backend.schedule_upsert(schedule=stored.replace(next_fire_at=fire))
            await scheduler.tick()
            jobs = (await app.backend.jobs_list(filter=JobFilter(), limit=10)).jobs
            fires = sorted(datetime.fromisoformat(j.unique_key.split(":", 2)[2]) for j in jobs if j.unique_key)
            assert fires and fires[0] == fire
            assert fires[-1] <= datetime.now(UTC) + timedelta(seconds=1), "fired ahead of the store's clock"
        finally:
            await app.aclose()
