"""Hostile names: every user-named thing (schedule, owner, queue, task) is stored under its own
name only, whatever the string, with no cross-talk between names and no clash with a backend's
internal keys (Redis: `{g}:sched:due`, `{g}:sched:owner:<owner>`, the `{q:<queue>}` hash tag).
"""

from __future__ import annotations

import pytest

from taskyard.backends.protocol import Backend
from taskyard.core.job import JobFilter, JobStatus
from taskyard.core.schedule import Schedule

from .factory import T0, at, claim_one, enqueue

#: Names that once collided with Redis's internal keys, break a hash tag, are glob or LIKE
#: wildcards, are not ASCII, or are long; each must behave as any other name.
HOSTILE = (
    "due",
    "owner:x",
    "x",
    "owner:",
    "scheds",
    "{g}",
    "}",
    "{",
    "{q:default}",
    "a}:job:b",
    "*",
    "?",
    "[a]",
    "%",
    "_",
    "~",
    "~647565",
    "日本語",
    "ü",
    "🦀",
    "n" * 200,
)


def sched(name: str, **fields) -> Schedule:  # type: ignore[no-untyped-def]
    fields.setdefault("task", "t.tick")
    fields.setdefault("every", 60.0)
    fields.setdefault("next_fire_at", at(60))
    return Schedule(name=name, **fields)


async def test_schedules_with_hostile_names_are_independent(backend: Backend) -> None:
    # Each name is also an owner, so owner `x` sits beside schedules `owner:x` and `x`.
    for name in HOSTILE:
        await backend.schedule_upsert(schedule=sched(name, owner=name))
    assert [s.name for s in await backend.schedules_list()] == sorted(HOSTILE)
    for name in HOSTILE:
        got = await backend.schedule_get(name=name)
        assert got is not None and got.name == name and got.owner == name
        assert [s.name for s in await backend.schedules_list(owner=name)] == [name]
    assert [s.name for s in await backend.schedules_get(names=["due", "*", "🦀"])] == sorted(
        ["due", "*", "🦀"]
    )
    due = await backend.schedules_due(now=at(60))
    assert [s.name for s in due] == sorted(HOSTILE)
    assert await backend.schedules_due(now=at(59)) == []


async def test_fire_pause_and_delete_touch_only_their_name(backend: Backend) -> None:
    for name in HOSTILE:
        await backend.schedule_upsert(schedule=sched(name, owner=name))
    for name in HOSTILE:
        assert await backend.schedule_record_fire(name=name, fire_time=at(60), next_fire_at=at(120))
        got = await backend.schedule_get(name=name)
        assert got is not None and got.last_fire_at == at(60) and got.next_fire_at == at(120)
    # Pause every other name: the due listing holds exactly the enabled ones.
    paused = set(HOSTILE[::2])
    for name in paused:
        current = await backend.schedule_get(name=name)
        assert current is not None
        await backend.schedule_upsert(schedule=current.replace(enabled=False))
    due = await backend.schedules_due(now=at(120))
    assert [s.name for s in due] == sorted(set(HOSTILE) - paused)
    # Delete one by one; the others stay whole, with their owners.
    for i, name in enumerate(HOSTILE):
        assert await backend.schedule_delete(name=name)
        assert await backend.schedule_get(name=name) is None
        rest = HOSTILE[i + 1 :]
        assert [s.name for s in await backend.schedules_list()] == sorted(rest)
        for other in rest[:3]:
            assert [s.name for s in await backend.schedules_list(owner=other)] == [other]
    assert await backend.schedules_due(now=at(10_000)) == []


async def test_owners_with_hostile_names_replace_and_delete_only_their_schedules(
    backend: Backend,
) -> None:
    for owner in HOSTILE:
        await backend.schedules_replace_owner(
            owner=owner, schedules=[sched(f"{owner}/1", owner=owner), sched(f"{owner}/2", owner=owner)]
        )
    for owner in HOSTILE:
        got = [s.name for s in await backend.schedules_list(owner=owner)]
        assert got == [f"{owner}/1", f"{owner}/2"]
    # Replacing owner `x` leaves owner `owner:x` (and schedule `owner:x`'s key space) alone.
    await backend.schedules_replace_owner(owner="x", schedules=[sched("x/3", owner="x")])
    assert [s.name for s in await backend.schedules_list(owner="x")] == ["x/3"]
    assert [s.name for s in await backend.schedules_list(owner="owner:x")] == ["owner:x/1", "owner:x/2"]
    for owner in HOSTILE:
        expected = 1 if owner == "x" else 2
        assert await backend.schedules_delete_owner(owner=owner) == expected
        assert await backend.schedules_list(owner=owner) == []
    assert await backend.schedules_list() == []


async def test_declared_schedules_with_hostile_names(backend: Backend) -> None:
    for name in HOSTILE:
        await backend.schedule_upsert(schedule=sched(name, owner=name, source="code"))
    assert await backend.schedules_confirm(names=list(HOSTILE), now=at(0)) == len(HOSTILE)
    assert await backend.schedules_confirm(names=list(HOSTILE[:5]), now=at(100)) == 5
    gone = await backend.schedules_expire_declared(grace=50.0, now=at(120))
    assert gone == sorted(HOSTILE[5:])
    assert [s.name for s in await backend.schedules_list()] == sorted(HOSTILE[:5])
    for name in HOSTILE[:5]:
        assert [s.name for s in await backend.schedules_list(owner=name)] == [name]


@pytest.mark.parametrize("name", HOSTILE)
async def test_queue_and_task_with_a_hostile_name(backend: Backend, name: str) -> None:
    # A neighbour on an ordinary queue, and a job of the hostile task on it, must not mix in.
    neighbour = await enqueue(backend, queue="default", task=name, seq=1)
    job = await enqueue(backend, queue=name, task=name, seq=2)
    assert job.queue == name and job.task == name
    got = await backend.job_get(job_id=job.id)
    assert got is not None and got.queue == name and got.task == name
    page = await backend.jobs_list(filter=JobFilter(queue=name))
    assert [j.id for j in page.jobs] == [job.id]
    page = await backend.jobs_list(filter=JobFilter(task=name))
    assert [j.id for j in page.jobs] == [job.id, neighbour.id]
    assert name in {q.name for q in await backend.queues_list()}
    counts = {c.queue: c.counts for c in await backend.queue_counts()}
    assert counts[name] == {JobStatus.PENDING: 1}

    # Paused: a claim over every queue takes only the neighbour.
    settings = await backend.queue_update(queue=name, paused=True, concurrency=1)
    assert settings.name == name and settings.paused and settings.concurrency == 1
    claimed = await claim_one(backend, now=T0)
    assert claimed.id == neighbour.id
    await backend.queue_update(queue=name, paused=False)
    claimed = await claim_one(backend, now=T0, queues=[name])
    assert claimed.id == job.id and claimed.queue == name and claimed.status is JobStatus.RUNNING
    assert (await backend.queue_get(queue=name)).concurrency == 1
    page = await backend.jobs_list(filter=JobFilter(queue=name, status=JobStatus.RUNNING))
    assert [j.id for j in page.jobs] == [job.id]


async def test_every_hostile_queue_is_its_own(backend: Backend) -> None:
    jobs = {name: await enqueue(backend, queue=name, task="t.noop", seq=i) for i, name in enumerate(HOSTILE)}
    for name, job in jobs.items():
        page = await backend.jobs_list(filter=JobFilter(queue=name))
        assert [j.id for j in page.jobs] == [job.id], name
        (claimed,) = await backend.job_claim(queues=[name], limit=5, worker_id="w", lease=30.0, now=T0)
        assert claimed.id == job.id
    assert await backend.job_claim(queues=None, limit=5, worker_id="w", lease=30.0, now=T0) == []
