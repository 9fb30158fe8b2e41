"""`app.schedules` on the memory backend with a fake clock: validation, runtime API, sets,
declarations and the misfire plans."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from taskyard import FakeClock, PayloadError, ScheduleError, Taskyard, UnknownTaskError
from taskyard.core.schedule import MisfirePolicy, Schedule, plan_fires
from taskyard.errors import NotFoundError
from taskyard.schedules import ScheduleTemplate

T0 = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)  # a Monday


class Scan(BaseModel):
    watchlist_id: int


def make_app(clock: FakeClock) -> Taskyard:
    app = Taskyard("memory://", clock=clock)

    @app.task("scan")
    async def scan(req: Scan) -> None: ...

    @app.task("report")
    async def report(payload: dict) -> None: ...

    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def app(clock: FakeClock) -> AsyncIterator[Taskyard]:
    app = make_app(clock)
    await app.open()
    yield app
    await app.aclose()


# -- validation: nothing stored on error ------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"task": "scan", "cron": "0 61 * * *", "payload": {"watchlist_id": 1}}, ScheduleError, "cron"),
        ({"task": "scan", "cron": "@daily", "tz": "Nowhere/Land", "payload": {"watchlist_id": 1}}, ScheduleError, "time zone"),
        ({"task": "nope", "cron": "@daily"}, UnknownTaskError, "unknown task 'nope'"),
        ({"task": "scan", "cron": "@daily", "payload": {"watchlist_id": "x"}}, PayloadError, "watchlist_id"),
        ({"task": "scan", "every": 0, "payload": {"watchlist_id": 1}}, ScheduleError, "> 0"),
        ({"task": "scan", "cron": "@daily", "misfire": "sometimes", "payload": {"watchlist_id": 1}}, ScheduleError, "misfire"),
        ({"task": "scan", "cron": "@daily", "jitter": -1, "payload": {"watchlist_id": 1}}, ScheduleError, "jitter"),
        ({"task": "scan", "cron": "@daily", "colour": "red"}, ScheduleError, "unknown option"),
    ],
)
async def test_invalid_schedules_are_rejected_before_storing(
    app: Taskyard, options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await app.schedules.aadd("bad", **options)
    assert await app.schedules.alist() == []


async def test_add_computes_next_fire_and_normalises(app: Taskyard) -> None:
    s = await app.schedules.aadd(
        "nightly", task="scan", cron="  30   6 * * * ", tz="UTC", payload={"watchlist_id": "7"}
    )
    assert s.cron == "30 6 * * *"
    assert s.payload == {"watchlist_id": 7}
    assert s.next_fire_at == datetime(2026, 5, 5, 6, 30, tzinfo=UTC)
    assert s.source == "api" and s.last_fire_at is None
    with pytest.raises(ScheduleError, match="already exists"):
        await app.schedules.aadd("nightly", task="scan", cron="@daily", payload={"watchlist_id": 1})
    assert (await app.schedules.aget("nightly")) == s


async def test_update_pause_resume_remove(app: Taskyard, clock: FakeClock) -> None:
    await app.schedules.aadd("s", task="report", every=60)
    updated = await app.schedules.aupdate("s", every=3600, queue="reports")
    assert updated.every == 3600 and updated.queue == "reports"
    assert updated.next_fire_at == datetime(2026, 5, 4, 11, tzinfo=UTC)
    paused = await app.schedules.apause("s")
    assert not paused.enabled and paused.next_fire_at is None
    assert await app.schedules.anext_fires("s", 3) == []
    clock.advance(7200)
    resumed = await app.schedules.aresume("s")
    assert resumed.enabled and resumed.next_fire_at == datetime(2026, 5, 4, 13, tzinfo=UTC)
    await app.schedules.aremove("s")
    with pytest.raises(NotFoundError):
        await app.schedules.aremove("s")
    with pytest.raises(NotFoundError):
        await app.schedules.aupdate("s", every=5)


async def test_next_fires_and_trigger(app: Taskyard) -> None:
    await app.schedules.aadd("weekly", task="report", cron="0 9 * * 1", tz="Europe/Paris")
    fires = await app.schedules.anext_fires("weekly", 3)
    assert [f.isoformat() for f in fires] == [
        "2026-05-11T07:00:00+00:00", "2026-05-18T07:00:00+00:00", "2026-05-25T07:00:00+00:00",
    ]
    job = await app.schedules.atrigger("weekly")
    assert job.task == "report" and job.unique_key == f"schedule:weekly:{T0.isoformat()}"
    assert (await app.schedules.aget("weekly")).last_fire_at is None  # type: ignore[union-attr]


# -- schedule sets: seed 002's subscription tiers ----------------------------------------------
def define_tiers(app: Taskyard) -> None:
    scans = {"key": "scans", "task": "scan", "misfire": "once"}
    app.schedules.define_set("basic", [{**scans, "cron": "@monthly"}])
    app.schedules.define_set("plus", [
        {**scans, "cron": "@weekly"},
        ScheduleTemplate(key="reports", task="report", cron="@monthly"),
    ])
    app.schedules.define_set("premium", [
        {**scans, "cron": "@daily"},
        ScheduleTemplate(key="reports", task="report", cron="@weekly", payload={"format": "pdf"}),
    ])


async def test_tiers_apply_replace_and_remove(app: Taskyard) -> None:
    define_tiers(app)
    owner = "subscription:42"
    basic = await app.schedules.aapply_set("basic", owner=owner, payload={"watchlist_id": 42})
    assert [(s.name, s.cron) for s in basic] == [("subscription:42:scans", "0 0 1 * *")]
    premium = await app.schedules.aapply_set("premium", owner=owner, payload={"watchlist_id": 42})
    assert {s.name: s.cron for s in premium} == {
        "subscription:42:scans": "0 0 * * *", "subscription:42:reports": "0 0 * * 0",
    }
    stored = await app.schedules.alist(owner=owner)
    assert [s.name for s in stored] == ["subscription:42:reports", "subscription:42:scans"]
    reports = next(s for s in stored if s.name.endswith("reports"))
    assert reports.payload == {"format": "pdf", "watchlist_id": 42}
    assert all(s.owner == owner and s.source == "set:premium" for s in stored)
    plus = await app.schedules.aapply_set("plus", owner=owner, payload={"watchlist_id": 42})
    assert {s.cron for s in plus} == {"0 0 * * 0", "0 0 1 * *"}
    await app.schedules.aapply_set("basic", owner="subscription:7", payload={"watchlist_id": 7})
    assert await app.schedules.aremove_owner(owner) == 2
    assert [s.name for s in await app.schedules.alist()] == ["subscription:7:scans"]


async def test_apply_set_validates_every_template_first(app: Taskyard) -> None:
    define_tiers(app)
    await app.schedules.aapply_set("plus", owner="o", payload={"watchlist_id": 1})
    with pytest.raises(PayloadError):
        await app.schedules.aapply_set("premium", owner="o", payload={"watchlist_id": "x"})
    assert {s.cron for s in await app.schedules.alist(owner="o")} == {"0 0 * * 0", "0 0 1 * *"}
    with pytest.raises(NotFoundError):
        await app.schedules.aapply_set("gold", owner="o")


async def test_reapplying_a_set_keeps_fire_bookkeeping(app: Taskyard, clock: FakeClock) -> None:
    define_tiers(app)
    [first] = await app.schedules.aapply_set("basic", owner="o", payload={"watchlist_id": 1})
    clock.advance(86400 * 40)
    [again] = await app.schedules.aapply_set("basic", owner="o", payload={"watchlist_id": 1})
    assert again.next_fire_at == first.next_fire_at  # still due: the scheduler catches it up


def test_define_set_rejects_bad_templates(clock: FakeClock) -> None:
    app = make_app(clock)
    with pytest.raises(ScheduleError, match="invalid cron"):
        app.schedules.define_set("x", [{"key": "a", "task": "scan", "cron": "bad cron here x y"}])
    with pytest.raises(ScheduleError, match="duplicate"):
        app.schedules.define_set("x", [{"key": "a", "task": "scan", "every": 5}] * 2)


# -- declarations ------------------------------------------------------------------------------
async def test_declared_schedules_are_synced_and_runtime_ones_untouched(clock: FakeClock) -> None:
    app = make_app(clock)
    app.schedule("nightly", task="scan", cron="30 6 * * *", payload={"watchlist_id": 1})
    app.schedule("old", task="report", every=60)
    await app.open()
    try:
        await app.schedules.aadd("runtime", task="report", every=5)
        report = await app.schedules.sync_declared()
        assert (report.written, report.confirmed, report.removed) == (("nightly", "old"), 0, ())
        report = await app.schedules.sync_declared()  # unchanged: only confirmed
        assert (report.written, report.confirmed, report.removed) == ((), 2, ())
        await app.schedules.apause("nightly")

        # the next deployment drops "old" and changes nothing else: "old" is not its to delete
        app2 = Taskyard(app.backend, clock=clock)
        app2.tasks = app.tasks
        app2.schedule("nightly", task="scan", cron="30 6 * * *", payload={"watchlist_id": 1})
        report = await app2.schedules.sync_declared()
        assert (report.written, report.confirmed, report.removed) == ((), 1, ())
        names = {s.name: s for s in await app2.schedules.alist()}
        assert set(names) == {"nightly", "old", "runtime"}
        assert not names["nightly"].enabled  # a runtime pause survives a restart
        assert names["nightly"].source == "code"
        # ... until nobody has confirmed it for the grace period
        clock.advance(301)
        report = await app2.schedules.sync_declared(grace=300)
        assert report.removed == ("old",)
        assert {s.name for s in await app2.schedules.alist()} == {"nightly", "runtime"}
    finally:
        await app.aclose()


def test_declare_checks_timing_at_once_and_tasks_when_known(clock: FakeClock) -> None:
    app = make_app(clock)
    with pytest.raises(ScheduleError):
        app.schedule("x", task="scan", cron="not a cron at all")
    with pytest.raises(PayloadError):
        app.schedule("y", task="scan", cron="@daily", payload={})
    app.schedule("later", task="defined.later", cron="@daily")  # checked at sync time
    assert "later" in app.schedules.declared


def test_sync_facade(clock: FakeClock) -> None:
    app = make_app(clock)
    try:
        app.schedules.add("s", task="report", every=30)
        assert [s.name for s in app.schedules.list()] == ["s"]
        assert len(app.schedules.next_fires("s", 2)) == 2
        assert app.schedules.trigger("s").task == "report"
        app.schedules.pause("s")
        app.schedules.resume("s")
        app.schedules.remove("s")
        assert app.schedules.get("s") is None
    finally:
        app.close()


# -- misfire plans -----------------------------------------------------------------------------
def sched(misfire: str, *, every: float = 1.0, cap: int = 100, first: datetime = T0) -> Schedule:
    return Schedule(
        name="s", task="report", every=every, misfire=MisfirePolicy(misfire), misfire_cap=cap,
        next_fire_at=first,
    )


def secs(plan_times: tuple[datetime, ...]) -> list[float]:
    return [(t - T0).total_seconds() for t in plan_times]


def test_on_time_fire_runs_under_every_policy() -> None:
    for policy in ("skip", "once", "all"):
        plan = plan_fires(sched(policy), T0 + timedelta(seconds=0.2))
        assert secs(plan.fire_times) == [0.0]
        assert plan.record_at == T0 and plan.next_fire_at == T0 + timedelta(seconds=1)


def test_missed_fires_per_policy() -> None:
    now = T0 + timedelta(seconds=5.2)  # fires 0..5 due; grace is 0.5 s, so 0..4 were missed
    skip = plan_fires(sched("skip"), now)
    assert secs(skip.fire_times) == [5.0] and skip.missed == 5
    once = plan_fires(sched("once"), now)
    assert secs(once.fire_times) == [0.0, 5.0]  # the catch-up carries the first missed time
    every = plan_fires(sched("all"), now)
    assert secs(every.fire_times) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    capped = plan_fires(sched("all", cap=2), now)
    assert secs(capped.fire_times) == [3.0, 4.0, 5.0] and capped.missed == 3
    for plan in (skip, once, every, capped):
        assert plan.record_at == T0 + timedelta(seconds=5)
        assert plan.next_fire_at == T0 + timedelta(seconds=6)


def test_a_daily_fire_a_little_late_is_not_a_misfire() -> None:
    midnight = datetime(2026, 5, 4, tzinfo=UTC)
    daily = Schedule(name="d", task="report", cron="@daily", next_fire_at=midnight)
    plan = plan_fires(daily, midnight + timedelta(seconds=20))  # a failover's worth late
    assert plan.fire_times == (midnight,)
    late = plan_fires(daily, midnight + timedelta(minutes=5))
    assert late.fire_times == () and late.missed == 1 and late.record_at == midnight


def test_a_long_outage_is_bounded_work() -> None:
    plan = plan_fires(sched("all", cap=10), T0 + timedelta(days=3))
    assert len(plan.fire_times) == 11  # 10 catch-ups and the on-time fire
    assert plan.fire_times[-1] == T0 + timedelta(days=3)
