"""The `Scheduler` service on the memory backend: one job per fire, whoever fires it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from taskyard import FakeClock, Taskyard
from taskyard.core import ids
from taskyard.core.job import JobFilter
from taskyard.core.unique import schedule_fire_key
from taskyard.services.leader import LeaderElector
from taskyard.services.scheduler import FireRecord, Scheduler, SchedulerConfig

T0 = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


def make_app(backend: object, clock: object) -> Taskyard:
    app = Taskyard(backend, clock=clock)  # type: ignore[arg-type]

    @app.task("tick", queue="ticks")
    async def tick(payload: dict) -> None: ...

    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def app(clock: FakeClock) -> AsyncIterator[Taskyard]:
    app = make_app("memory://", clock)
    await app.open()
    yield app
    await app.aclose()


async def all_jobs(app: Taskyard) -> list:  # type: ignore[type-arg]
    return (await app.backend.jobs_list(filter=JobFilter(), limit=1000)).jobs


async def test_tick_fires_one_job_per_fire_and_records_it(app: Taskyard, clock: FakeClock) -> None:
    await app.schedules.aadd("every10", task="tick", every=10, payload={"n": 1}, priority=3)
    scheduler = Scheduler(app, None)
    assert await scheduler.tick() == pytest.approx(1.0)  # nothing due within a second
    clock.advance(10)
    await scheduler.tick()
    [job] = await all_jobs(app)
    fire = T0 + timedelta(seconds=10)
    key = schedule_fire_key("every10", fire)
    assert key == f"schedule:every10:{fire.isoformat()}"
    assert (job.unique_key, job.id, job.queue, job.priority, job.payload) == (
        key, ids.deterministic_id(fire, key), "ticks", 3, {"n": 1},
    )
    stored = await app.schedules.aget("every10")
    assert stored is not None
    assert stored.last_fire_at == fire and stored.next_fire_at == fire + timedelta(seconds=10)
    assert await scheduler.tick() == pytest.approx(1.0)
    assert len(await all_jobs(app)) == 1


async def test_two_schedulers_that_both_fire_make_one_job(app: Taskyard, clock: FakeClock) -> None:
    await app.schedules.aadd("s", task="tick", every=5)
    due = await app.schedules.aget("s")
    clock.advance(5)
    a, b = Scheduler(app, None), Scheduler(app, None)
    records: list[FireRecord] = []
    b.subscribe_fires(records.append)
    assert due is not None
    # both read the schedule before either recorded the fire (split brain)
    await a.fire(due, clock.now())
    await b.fire(due, clock.now())
    assert len(await all_jobs(app)) == 1
    assert records and not records[0].recorded  # compare-and-set refused the second


async def test_crash_between_enqueue_and_record_replays_into_the_same_job(
    app: Taskyard, clock: FakeClock
) -> None:
    await app.schedules.aadd("s", task="tick", every=5, jitter=2)
    clock.advance(5)
    stored = await app.schedules.aget("s")
    assert stored is not None
    fire = stored.next_fire_at
    assert fire is not None
    # a scheduler stored the job and died before recording the fire
    await app._store(app.schedules.drafts(stored, [fire]), None)
    clock.advance(1)  # the successor replays the fire (still within its 2.5 s grace)
    await Scheduler(app, None).tick()
    jobs = await all_jobs(app)
    assert [j.unique_key for j in jobs] == [schedule_fire_key("s", fire)]
    assert (await app.schedules.aget("s")).last_fire_at == fire  # type: ignore[union-attr]


async def test_jitter_delays_run_at_within_bounds(app: Taskyard, clock: FakeClock) -> None:
    await app.schedules.aadd("j", task="tick", every=1, jitter=30, misfire="all")
    clock.advance(20)
    await Scheduler(app, None, rng=random.Random(7)).tick()
    jobs = await all_jobs(app)
    assert len(jobs) == 20
    for job in jobs:
        fire = datetime.fromisoformat(job.unique_key.removeprefix("schedule:j:"))  # type: ignore[union-attr]
        assert fire <= job.run_at <= fire + timedelta(seconds=30)
    assert len({j.run_at - datetime.fromisoformat(j.unique_key[11:]) for j in jobs}) > 1  # type: ignore[index]


async def test_a_follower_does_not_fire(app: Taskyard, clock: FakeClock) -> None:
    await app.schedules.aadd("s", task="tick", every=1)
    other = LeaderElector(app.backend, ttl=30, holder="other")
    ours = LeaderElector(app.backend, ttl=30, holder="ours")
    assert await other.attempt()
    assert not await ours.attempt()
    scheduler = Scheduler(app, ours, SchedulerConfig(tick_interval=0.05))
    clock.advance(5)
    await scheduler.start()
    try:
        # the loop sleeps on the fake clock; advancing it lets a few passes run
        for _ in range(5):
            clock.advance(0.05)
            await asyncio.sleep(0)
        assert await all_jobs(app) == []
    finally:
        await scheduler.stop()


async def test_a_schedule_that_no_longer_fits_the_app_is_skipped_not_looped(clock: FakeClock) -> None:
    app = make_app("memory://", clock)
    await app.open()
    try:
        await app.schedules.aadd("s", task="tick", every=1)
        app.tasks.pop("tick")  # the next deployment removed the task
        clock.advance(1)
        scheduler = Scheduler(app, None)
        await scheduler.tick()
        stored = await app.schedules.aget("s")
        assert stored is not None and stored.next_fire_at == T0 + timedelta(seconds=2)
        assert await all_jobs(app) == []
    finally:
        await app.aclose()


async def test_service_loop_fires_on_the_real_clock() -> None:
    app = make_app("memory://", None)
    await app.open()
    leader = LeaderElector(app.backend, ttl=5)
    scheduler = Scheduler(app, leader, SchedulerConfig(tick_interval=0.2))
    fired = asyncio.Event()
    records: list[FireRecord] = []

    def on_fire(record: FireRecord) -> None:
        records.append(record)
        if sum(len(r.fire_times) for r in records) >= 3:
            fired.set()

    scheduler.subscribe_fires(on_fire)
    app.schedule("fast", task="tick", every=0.1)
    try:
        await scheduler.start()
        await leader.start()
        await asyncio.wait_for(fired.wait(), timeout=10)
    finally:
        await scheduler.stop()
        await leader.stop()
        await app.aclose()
    jobs = await all_jobs(app)
    keys = [j.unique_key for j in jobs]
    assert len(keys) == len(set(keys)) >= 3
    stored = await app.backend.schedule_get(name="fast")
    assert stored is not None and stored.source == "code"
