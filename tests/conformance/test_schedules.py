"""Schedules: CRUD, owners, due listing and the compare-and-set of fire bookkeeping."""

from __future__ import annotations

from taskyard.backends.protocol import Backend
from taskyard.clock import utcnow
from taskyard.core.schedule import MisfirePolicy, Schedule

from .factory import T0, at


def sched(name: str, **fields) -> Schedule:  # type: ignore[no-untyped-def]
    fields.setdefault("task", "t.tick")
    fields.setdefault("every", 60.0)
    return Schedule(name=name, **fields)


async def test_upsert_and_get_round_trip_every_field(backend: Backend) -> None:
    s = Schedule(
        name="nightly-sync",
        task="services.sync_all",
        cron="30 6 * * *",
        tz="Europe/Paris",
        payload={"full": True, "ids": [1, 2]},
        queue="sync",
        priority=3,
        jitter=30.0,
        misfire=MisfirePolicy.ALL,
        misfire_cap=7,
        enabled=False,
        owner="subscription:42",
        source="code",
        last_fire_at=at(-3600),
        next_fire_at=at(600),
        created_at=at(-7200),
        updated_at=at(-60),
    )
    stored = await backend.schedule_upsert(schedule=s)
    assert stored == s
    assert await backend.schedule_get(name="nightly-sync") == s


async def test_upsert_replaces(backend: Backend) -> None:
    await backend.schedule_upsert(schedule=sched("a", every=10.0))
    await backend.schedule_upsert(schedule=sched("a", every=20.0, owner="o"))
    got = await backend.schedule_get(name="a")
    assert got is not None and got.every == 20.0 and got.owner == "o"
    assert [s.name for s in await backend.schedules_list()] == ["a"]


async def test_get_missing(backend: Backend) -> None:
    assert await backend.schedule_get(name="nope") is None


async def test_list_sorted_and_by_owner(backend: Backend) -> None:
    for name, owner in [("c", "x"), ("a", None), ("b", "x"), ("d", "y")]:
        await backend.schedule_upsert(schedule=sched(name, owner=owner))
    assert [s.name for s in await backend.schedules_list()] == ["a", "b", "c", "d"]
    assert [s.name for s in await backend.schedules_list(owner="x")] == ["b", "c"]
    assert await backend.schedules_list(owner="nobody") == []


async def test_delete(backend: Backend) -> None:
    await backend.schedule_upsert(schedule=sched("a"))
    assert await backend.schedule_delete(name="a") is True
    assert await backend.schedule_delete(name="a") is False
    assert await backend.schedule_get(name="a") is None


async def test_replace_owner(backend: Backend) -> None:
    await backend.schedule_upsert(schedule=sched("old-1", owner="sub:1"))
    await backend.schedule_upsert(schedule=sched("keep", owner="sub:1", every=5.0))
    await backend.schedule_upsert(schedule=sched("other", owner="sub:2"))
    await backend.schedules_replace_owner(
        owner="sub:1",
        schedules=[sched("keep", owner="sub:1", every=9.0), sched("new", owner="sub:1")],
    )
    assert [s.name for s in await backend.schedules_list(owner="sub:1")] == ["keep", "new"]
    kept = await backend.schedule_get(name="keep")
    assert kept is not None and kept.every == 9.0
    assert [s.name for s in await backend.schedules_list(owner="sub:2")] == ["other"]
    await backend.schedules_replace_owner(owner="sub:1", schedules=[])
    assert await backend.schedules_list(owner="sub:1") == []


async def test_delete_owner(backend: Backend) -> None:
    for name, owner in [("a", "o"), ("b", "o"), ("c", "p")]:
        await backend.schedule_upsert(schedule=sched(name, owner=owner))
    assert await backend.schedules_delete_owner(owner="o") == 2
    assert await backend.schedules_delete_owner(owner="o") == 0
    assert [s.name for s in await backend.schedules_list()] == ["c"]


async def test_due_lists_enabled_due_schedules_earliest_first(backend: Backend) -> None:
    await backend.schedule_upsert(schedule=sched("late", next_fire_at=at(10)))
    await backend.schedule_upsert(schedule=sched("early", next_fire_at=at(-10)))
    await backend.schedule_upsert(schedule=sched("exact", next_fire_at=T0))
    await backend.schedule_upsert(schedule=sched("future", next_fire_at=at(11)))
    await backend.schedule_upsert(schedule=sched("off", next_fire_at=at(-100), enabled=False))
    await backend.schedule_upsert(schedule=sched("never"))
    assert [s.name for s in await backend.schedules_due(now=T0)] == ["early", "exact"]
    assert [s.name for s in await backend.schedules_due(now=at(10))] == ["early", "exact", "late"]


async def test_record_fire_compare_and_set(backend: Backend) -> None:
    await backend.schedule_upsert(schedule=sched("s", next_fire_at=T0))
    assert await backend.schedule_record_fire(name="s", fire_time=T0, next_fire_at=at(60)) is True
    got = await backend.schedule_get(name="s")
    assert got is not None and got.last_fire_at == T0 and got.next_fire_at == at(60)
    # A second scheduler recording the same fire (or an older one) loses and changes nothing.
    assert await backend.schedule_record_fire(name="s", fire_time=T0, next_fire_at=at(999)) is False
    assert (
        await backend.schedule_record_fire(name="s", fire_time=at(-60), next_fire_at=at(999))
        is False
    )
    got = await backend.schedule_get(name="s")
    assert got is not None and got.last_fire_at == T0 and got.next_fire_at == at(60)
    # The next fire wins; next_fire_at may be cleared (a schedule with no more fires).
    assert await backend.schedule_record_fire(name="s", fire_time=at(60), next_fire_at=None) is True
    got = await backend.schedule_get(name="s")
    assert got is not None and got.last_fire_at == at(60) and got.next_fire_at is None
    assert await backend.schedules_due(now=at(10_000)) == []


async def test_record_fire_on_missing_schedule(backend: Backend) -> None:
    assert (
        await backend.schedule_record_fire(name="ghost", fire_time=T0, next_fire_at=at(1)) is False
    )


async def test_record_fire_keeps_the_rest(backend: Backend) -> None:
    s = sched("s", payload={"x": 1}, owner="o", next_fire_at=T0, jitter=2.0)
    await backend.schedule_upsert(schedule=s)
    await backend.schedule_record_fire(name="s", fire_time=T0, next_fire_at=at(60))
    assert await backend.schedule_get(name="s") == s.replace(last_fire_at=T0, next_fire_at=at(60))


# -- declarations: batch read, confirmation, expiry ----------------------------------------------
def declared(name: str, **fields) -> Schedule:  # type: ignore[no-untyped-def]
    fields.setdefault("source", "code")
    return sched(name, **fields)


async def test_declaration_fields_round_trip(backend: Backend) -> None:
    s = declared(
        "d", payload={"ratio": 0.1, "n": 3}, declarer="billing host-a:41:x1",
        declarer_started_at=at(-120), confirmed_at=at(-5), next_fire_at=at(60),
    )
    await backend.schedule_upsert(schedule=s)
    assert await backend.schedule_get(name="d") == s
    assert await backend.schedules_list() == [s]


async def test_get_many_by_name(backend: Backend) -> None:
    for name in ("c", "a", "b"):
        await backend.schedule_upsert(schedule=sched(name))
    assert [s.name for s in await backend.schedules_get(names=["c", "a", "ghost", "a"])] == ["a", "c"]
    assert await backend.schedules_get(names=[]) == []


async def test_confirm_touches_only_confirmed_at_of_code_schedules(backend: Backend) -> None:
    code = declared("code", payload={"ratio": 0.1}, declarer="v1 h:1", declarer_started_at=at(-60),
                    confirmed_at=at(-30), next_fire_at=at(60), last_fire_at=at(-60))
    runtime = sched("runtime", next_fire_at=at(60))
    await backend.schedule_upsert(schedule=code)
    await backend.schedule_upsert(schedule=runtime)
    await backend.schedule_record_fire(name="code", fire_time=T0, next_fire_at=at(120))
    count = await backend.schedules_confirm(names=["code", "runtime", "ghost"], now=at(10))
    assert count == 1
    got = await backend.schedule_get(name="code")
    assert got == code.replace(confirmed_at=at(10), last_fire_at=T0, next_fire_at=at(120))
    assert await backend.schedule_get(name="runtime") == runtime
    assert await backend.schedules_confirm(names=[], now=at(10)) == 0


async def test_expire_deletes_unconfirmed_code_schedules_only(backend: Backend) -> None:
    await backend.schedule_upsert(schedule=declared("stale", confirmed_at=at(-301), owner="o"))
    await backend.schedule_upsert(schedule=declared("edge", confirmed_at=at(-300)))
    await backend.schedule_upsert(schedule=declared("fresh", confirmed_at=at(-10)))
    await backend.schedule_upsert(schedule=sched("runtime", updated_at=at(-9999)))
    await backend.schedule_upsert(schedule=sched("set", source="set:basic", owner="o"))
    assert await backend.schedules_expire_declared(grace=300, now=T0) == ["stale"]
    assert [s.name for s in await backend.schedules_list()] == ["edge", "fresh", "runtime", "set"]
    assert [s.name for s in await backend.schedules_list(owner="o")] == ["set"]
    assert await backend.schedules_expire_declared(grace=300, now=at(1)) == ["edge"]
    assert await backend.schedules_expire_declared(grace=300, now=at(1)) == []


async def test_expire_starts_the_grace_of_never_confirmed_declarations(backend: Backend) -> None:
    # Stored before declarations were confirmed (an upgraded store): kept, and its grace starts.
    legacy = declared("legacy", next_fire_at=at(60))
    await backend.schedule_upsert(schedule=legacy)
    assert await backend.schedules_expire_declared(grace=300, now=T0) == []
    assert await backend.schedule_get(name="legacy") == legacy.replace(confirmed_at=T0)
    assert await backend.schedules_expire_declared(grace=300, now=at(300)) == []
    assert await backend.schedules_expire_declared(grace=300, now=at(301)) == ["legacy"]
    assert await backend.schedule_get(name="legacy") is None
    assert await backend.schedules_due(now=at(10_000)) == []


async def test_confirm_and_expire_default_to_the_store_clock(backend: Backend) -> None:
    await backend.schedule_upsert(schedule=declared("d", confirmed_at=at(-10)))
    before = utcnow()
    assert await backend.schedules_confirm(names=["d"]) == 1
    got = await backend.schedule_get(name="d")
    assert got is not None and got.confirmed_at is not None
    assert abs((got.confirmed_at - before).total_seconds()) < 5
    assert await backend.schedules_expire_declared(grace=60) == []
    assert await backend.schedule_get(name="d") is not None


async def test_a_declared_schedule_replaced_or_deleted_leaves_no_trace(backend: Backend) -> None:
    await backend.schedule_upsert(schedule=declared("d", confirmed_at=at(-1000)))
    await backend.schedule_upsert(schedule=sched("d"))  # the name becomes a runtime schedule
    assert await backend.schedules_expire_declared(grace=300, now=T0) == []
    await backend.schedule_upsert(schedule=declared("e", confirmed_at=at(-1000)))
    assert await backend.schedule_delete(name="e") is True
    assert await backend.schedules_expire_declared(grace=300, now=T0) == []
    assert [s.name for s in await backend.schedules_list()] == ["d"]
