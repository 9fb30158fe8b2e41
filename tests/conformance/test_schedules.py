"""Schedules: CRUD, owners, due listing and the compare-and-set of fire bookkeeping."""

from __future__ import annotations

from taskyard.backends.protocol import Backend
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
