"""Declared schedules of several processes on one store (two apps, two versions of one app in
a rolling deploy): the rule of `core/declaration.py`, played on the memory backend with a fake
clock. Each `Taskyard` below stands for one process; `sync` is what its scheduler does every
few seconds (the leader also expires).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest

from taskyard import FakeClock, Taskyard
from taskyard.backends.memory import MemoryBackend
from taskyard.core.declaration import DeclarationStep, Declarer, declaration_step
from taskyard.core.schedule import Schedule
from taskyard.http.api.schemas import ScheduleOut
from taskyard.schedules import DeclarationReport
from taskyard.services.scheduler import Scheduler, SchedulerConfig
from tests.support.waiting import wait_until

T0 = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)
GRACE = 300.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def backend() -> AsyncIterator[MemoryBackend]:
    backend = MemoryBackend()
    await backend.open()
    yield backend
    await backend.close()


def process(backend: MemoryBackend, clock: FakeClock, name: str, schedules: dict[str, dict]) -> Taskyard:
    """An app (one process of one version) declaring `schedules`."""
    app = Taskyard(backend, clock=clock, name=name)

    @app.task("tick")
    async def tick(payload: dict) -> None: ...

    for schedule, options in schedules.items():
        app.schedule(schedule, task="tick", **options)
    return app


async def sync(app: Taskyard, *, leader: bool = True) -> DeclarationReport:
    return await app.schedules.sync_declared(grace=GRACE, expire=leader)


async def stored(app: Taskyard) -> dict[str, Schedule]:
    return {s.name: s for s in await app.schedules.alist()}


async def run_side_by_side(clock: FakeClock, apps: list[Taskyard], seconds: float, step: float = 10) -> list[DeclarationReport]:
    """Every app syncs every `step` seconds for `seconds` (the first one leads)."""
    reports = []
    for _ in range(int(seconds / step)):
        for i, app in enumerate(apps):
            reports.append(await sync(app, leader=i == 0))
        clock.advance(step)
    return reports


# -- the rule as a pure function --------------------------------------------------------------
def test_declaration_step() -> None:
    old = Declarer("app", "h:1:aa", T0)
    new = Declarer("app", "h:2:bb", T0 + timedelta(seconds=60))
    base = Schedule(name="s", task="t", every=60.0, source="code")
    now = T0 + timedelta(seconds=120)
    theirs = new.stamp(base, now - timedelta(seconds=10))
    assert declaration_step(None, old.stamp(base, now), now=now, grace=GRACE) is DeclarationStep.CREATE
    # same definition (declarer and confirmation do not count): confirm, whoever stored it
    assert declaration_step(theirs, old.stamp(base, now), now=now, grace=GRACE) is DeclarationStep.CONFIRM
    changed = base.replace(every=30.0)
    # a newer process's live definition wins over an older one's ...
    assert declaration_step(theirs, old.stamp(changed, now), now=now, grace=GRACE) is DeclarationStep.YIELD
    # ... an even newer process replaces it ...
    newest = Declarer("app", "h:3:cc", T0 + timedelta(seconds=90))
    assert declaration_step(theirs, newest.stamp(changed, now), now=now, grace=GRACE) is DeclarationStep.REPLACE
    # ... and an older one takes over once it went unconfirmed for half the grace
    quiet = theirs.replace(confirmed_at=now - timedelta(seconds=GRACE / 2 + 1))
    assert declaration_step(quiet, old.stamp(changed, now), now=now, grace=GRACE) is DeclarationStep.REPLACE
    # stored before declarers were recorded (or changed through the API), or as a runtime
    # schedule of the same name: ours, even when equal (to record its declarer)
    assert declaration_step(base, old.stamp(changed, now), now=now, grace=GRACE) is DeclarationStep.REPLACE
    assert declaration_step(base, old.stamp(base, now), now=now, grace=GRACE) is DeclarationStep.REPLACE
    runtime = base.replace(source="api")
    assert declaration_step(runtime, old.stamp(base, now), now=now, grace=GRACE) is DeclarationStep.REPLACE
    # two processes started at the same instant: the larger label wins, on both sides
    twin = Declarer("app", "h:4:dd", new.started_at)
    assert declaration_step(theirs, twin.stamp(changed, now), now=now, grace=GRACE) is DeclarationStep.REPLACE
    mine = twin.stamp(changed, now)
    assert declaration_step(mine, new.stamp(base, now), now=now, grace=GRACE) is DeclarationStep.YIELD


# -- two apps on one store ---------------------------------------------------------------------
async def test_two_apps_on_one_store_never_delete_each_others_schedules(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    demo = process(backend, clock, "demo:app", {"heartbeat": {"every": 60}})
    other = process(backend, clock, "other:app", {"cleanup": {"cron": "@hourly"}})
    reports = await run_side_by_side(clock, [demo, other], seconds=2 * GRACE)
    reports += await run_side_by_side(clock, [other, demo], seconds=2 * GRACE)  # the other leads
    assert all(r.removed == () and r.yielded == () for r in reports)
    assert sum(len(r.written) for r in reports) == 2  # each stored once, then only confirmed
    schedules = await stored(demo)
    assert set(schedules) == {"heartbeat", "cleanup"}
    assert schedules["heartbeat"].declarer is not None and schedules["heartbeat"].declarer.startswith("demo:app ")
    assert schedules["cleanup"].declarer is not None and schedules["cleanup"].declarer.startswith("other:app ")
    assert schedules["cleanup"].confirmed_at == clock.now() - timedelta(seconds=10)


# -- two versions of one app: a rolling deploy, a rollback, an aborted rollout -------------------
V1 = {"nightly": {"cron": "0 2 * * *"}, "v1-only": {"every": 60}}
V2 = {"nightly": {"cron": "0 3 * * *"}, "v2-only": {"every": 30}}


async def test_rolling_deploy_converges_to_the_new_version_without_fighting(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    v1 = process(backend, clock, "app", V1)
    await sync(v1)
    clock.advance(60)
    v2 = process(backend, clock, "app", V2)  # started after v1: its definitions win
    reports = await run_side_by_side(clock, [v1, v2], seconds=2 * GRACE)
    v1_reports, v2_reports = reports[0::2], reports[1::2]
    schedules = await stored(v1)
    assert set(schedules) == {"nightly", "v1-only", "v2-only"}  # nobody deleted anything
    assert schedules["nightly"].cron == "0 3 * * *"
    assert all(r.removed == () for r in reports)
    assert [r.written for r in v2_reports if r.written] == [("nightly", "v2-only")]  # written once
    assert all(r.written == () and r.yielded == ("nightly",) for r in v1_reports[1:])

    # v1's last process stops: its v1-only schedule lives out the grace, then goes
    stopped_at = clock.now()
    removed_at = None
    while removed_at is None:
        report = await sync(v2)
        if report.removed:
            assert report.removed == ("v1-only",)
            removed_at = clock.now()
        clock.advance(10)
    assert GRACE <= (removed_at - stopped_at).total_seconds() <= GRACE + 20
    assert set(await stored(v2)) == {"nightly", "v2-only"}


async def test_rollback_converges_to_the_old_definition(backend: MemoryBackend, clock: FakeClock) -> None:
    v2 = process(backend, clock, "app", V2)
    await sync(v2)
    clock.advance(60)
    v1 = process(backend, clock, "app", V1)  # redeployed after v2
    reports = await run_side_by_side(clock, [v2, v1], seconds=GRACE)
    assert (await stored(v1))["nightly"].cron == "0 2 * * *"
    assert [r.written for r in reports if r.written] == [("nightly", "v1-only")]
    assert all(r.removed == () for r in reports)


async def test_an_aborted_rollout_hands_the_name_back_before_it_could_expire(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    v1 = process(backend, clock, "app", V1)
    await sync(v1)
    clock.advance(60)
    v2 = process(backend, clock, "app", V2)
    await run_side_by_side(clock, [v1, v2], seconds=60)
    assert (await stored(v1))["nightly"].cron == "0 3 * * *"
    # every v2 process stops; v1 (older) takes its definition back after half the grace
    reports = await run_side_by_side(clock, [v1], seconds=GRACE)
    assert (await stored(v1))["nightly"].cron == "0 2 * * *"
    taken_back = [i for i, r in enumerate(reports) if r.written == ("nightly",)]
    assert len(taken_back) == 1 and GRACE / 2 <= taken_back[0] * 10 <= GRACE / 2 + 20
    # v2-only, declared by nobody now, goes after the grace; nightly never went
    reports = await run_side_by_side(clock, [v1], seconds=GRACE)
    assert [r.removed for r in reports if r.removed] == [("v2-only",)]
    assert set(await stored(v1)) == {"nightly", "v1-only"}


async def test_a_runtime_pause_and_fire_bookkeeping_survive_syncs_and_versions(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    v1 = process(backend, clock, "app", V1)
    await sync(v1)
    await v1.schedules.apause("v1-only")
    await backend.schedule_record_fire(name="nightly", fire_time=T0, next_fire_at=T0 + timedelta(days=1))
    clock.advance(60)
    v2 = process(backend, clock, "app", {**V1, "nightly": {"cron": "0 3 * * *"}})
    await run_side_by_side(clock, [v1, v2], seconds=GRACE)
    schedules = await stored(v1)
    assert not schedules["v1-only"].enabled and schedules["v1-only"].next_fire_at is None
    assert schedules["nightly"].last_fire_at == T0  # a definition change keeps the bookkeeping
    assert schedules["nightly"].cron == "0 3 * * *"


async def test_a_declaration_stored_before_the_upgrade_is_kept_for_the_grace(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    # Written by a taskyard that did not confirm declarations: no declarer, no confirmed_at.
    legacy = Schedule(name="legacy", task="tick", every=60.0, source="code", next_fire_at=T0)
    await backend.schedule_upsert(schedule=legacy)
    app = process(backend, clock, "app", {"kept": {"every": 60}})
    reports = await run_side_by_side(clock, [app], seconds=GRACE)
    assert all(r.removed == () for r in reports)
    reports = await run_side_by_side(clock, [app], seconds=30)
    assert [r.removed for r in reports if r.removed] == [("legacy",)]


async def test_only_the_leader_expires(backend: MemoryBackend, clock: FakeClock) -> None:
    gone = process(backend, clock, "gone", {"orphan": {"every": 60}})
    await sync(gone)
    follower = process(backend, clock, "app", {})
    clock.advance(GRACE + 1)
    assert (await sync(follower, leader=False)).removed == ()
    assert (await sync(follower, leader=True)).removed == ("orphan",)


# -- the scheduler service ---------------------------------------------------------------------
async def test_scheduler_declares_at_start_and_its_config_is_checked(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    app = process(backend, clock, "app", {"hb": {"every": 60}})
    scheduler = Scheduler(app, None, SchedulerConfig(declared_grace=120))
    assert scheduler.config.confirm_interval == 10.0
    assert SchedulerConfig(declared_grace=30).confirm_interval == 5.0
    with pytest.raises(ValueError, match="declared_grace"):
        SchedulerConfig(declared_grace=0)
    await scheduler.on_start()
    schedule = await backend.schedule_get(name="hb")
    assert schedule is not None and schedule.confirmed_at == T0
    assert schedule.declarer == app.schedules.declarer.label  # type: ignore[union-attr]
    clock.advance(121)
    await backend.schedule_upsert(schedule=schedule.replace(name="orphan"))
    report = await scheduler.declare()  # no elector: it leads, so it expires too
    assert report.removed == ("orphan",) and report.confirmed == 1


async def test_a_paused_scheduler_keeps_confirming(backend: MemoryBackend, clock: FakeClock) -> None:
    app = process(backend, clock, "app", {"hb": {"every": 60}})
    scheduler = Scheduler(app, None, SchedulerConfig(declared_grace=0.6))  # confirms every 0.1 s

    async def confirmed_now() -> bool:
        schedule = await backend.schedule_get(name="hb")
        return schedule is not None and schedule.confirmed_at == clock.now()

    await scheduler.start()
    try:
        scheduler.pause()
        clock.advance(5)
        await wait_until(confirmed_now, timeout=10, what="a confirmation while paused")
        assert scheduler.fires == 0
    finally:
        await scheduler.stop()


def test_the_api_model_shows_every_schedule_field() -> None:
    assert set(ScheduleOut.model_fields) - {"next_fires"} == {f.name for f in fields(Schedule)}


async def test_a_runtime_update_of_a_declared_schedule_is_undone_at_the_next_confirmation(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    app = process(backend, clock, "app", {"hb": {"every": 60}})
    await sync(app)
    await backend.schedule_record_fire(name="hb", fire_time=T0, next_fire_at=T0 + timedelta(seconds=60))
    await app.schedules.aupdate("hb", every=30)
    clock.advance(10)
    assert (await sync(app)).written == ("hb",)  # the code is the definition
    hb = (await stored(app))["hb"]
    assert hb.every == 60 and hb.declarer == app.schedules.declarer.label  # type: ignore[union-attr]
    assert hb.last_fire_at == T0
