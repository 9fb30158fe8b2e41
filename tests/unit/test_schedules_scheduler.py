"""The `Scheduler` service on the memory backend: one job per fire, whoever fires it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from taskyard import FakeClock, Taskyard
from taskyard.core import ids
from taskyard.core.cluster import WorkerInfo
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
    await app.store_drafts(app.schedules.drafts(stored, [fire]))
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


async def test_a_schedule_whose_task_no_live_worker_knows_is_held_back_not_failed(clock: FakeClock) -> None:
    app = make_app("memory://", clock)
    await app.open()
    try:
        await app.schedules.aadd("s", task="tick", every=1, misfire="once")
        app.tasks.pop("tick")  # the next deployment removed the task
        clock.advance(1)
        scheduler = Scheduler(app, None)
        assert await scheduler.tick() > 0  # nothing to do until a worker knows it: no busy loop
        stored = await app.schedules.aget("s")
        assert stored is not None and stored.next_fire_at == T0 + timedelta(seconds=1)  # still due
        assert await all_jobs(app) == []
        # A worker of the version that still has the task comes up: the held-back fire runs,
        # with the task settings stored with the schedule, under its misfire policy.
        clock.advance(5)
        await app.backend.worker_heartbeat(info=WorkerInfo(
            id="w-old", host="h", pid=1, queues=("ticks",), concurrency=1, started_at=clock.now(),
            last_heartbeat=clock.now(), tasks=("tick",),
        ))
        await scheduler.tick()
        jobs = await all_jobs(app)
        # misfire="once": one catch-up for the held-back fires, and the fire that is due now.
        assert [(j.task, j.queue, j.status.value) for j in jobs] == [("tick", "ticks", "pending")] * 2
        fires = sorted(j.unique_key for j in jobs)
        assert fires[-1] == schedule_fire_key("s", T0 + timedelta(seconds=6))
    finally:
        await app.aclose()


async def test_another_apps_schedule_fires_with_its_stored_task_settings(clock: FakeClock) -> None:
    """Rolling deploy: v2 declares a schedule of a task v1 does not have; v1 leads the
    scheduler. v1 fires it (a v2 worker knows the task) with v2's queue, retries and timeout."""
    from taskyard import Retry

    v2 = Taskyard("memory://", clock=clock)

    @v2.task("reports.render", queue="reports", retry=Retry(attempts=4), timeout=90, priority=3, max_rescues=7)
    async def render(payload: dict) -> None: ...

    await v2.open()
    try:
        v1 = make_app("memory://", clock)
        v1.backend = v2.backend  # one store, two app versions
        await v2.schedules.aadd("nightly", task="reports.render", every=1, payload={"day": 1})
        await v2.backend.worker_heartbeat(info=WorkerInfo(
            id="w-v2", host="h", pid=2, queues=("reports",), concurrency=1, started_at=clock.now(),
            last_heartbeat=clock.now(), tasks=("reports.render",),
        ))
        clock.advance(1)
        await Scheduler(v1, None).tick()
        (job,) = await all_jobs(v2)
        assert (job.task, job.queue, job.priority, job.max_attempts, job.timeout, job.max_rescues) == (
            "reports.render", "reports", 3, 4, 90, 7,
        )
        assert job.payload == {"day": 1}
        assert job.unique_key == schedule_fire_key("nightly", T0 + timedelta(seconds=1))
    finally:
        await v2.aclose()


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
