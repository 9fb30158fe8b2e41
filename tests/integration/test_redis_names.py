"""Redis key names of user-named things (schema 2, see `backends/redis/keys.py`): the Lua and
Python escaping agree, a queue name never breaks its hash tag, schema-1 keys are migrated on
open, and a schedule store that cannot be applied whole changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ResponseError

from taskyard.backends.protocol import Backend
from taskyard.backends.redis.connection import SCHEMA_VERSION
from taskyard.backends.redis.keys import QUEUE_KEY_NAMES, Keys, queue_tag, schedule_tag
from taskyard.backends.redis.scripts import script_source
from taskyard.core.ids import new_id
from taskyard.core.job import JobDraft, JobFilter
from taskyard.core.schedule import Schedule
from tests.conformance.factory import T0, at
from tests.conformance.test_names import HOSTILE
from tests.support.backends import opened_backend as opened
from tests.support.redis import isolated_url
from tests.support.servers import REDIS_URL


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with isolated_url() as value:
        yield value


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield c
    finally:
        await c.aclose()


def sched(name: str, **fields: object) -> Schedule:
    return Schedule(name=name, task="t", every=60.0, next_fire_at=at(60), **fields)  # type: ignore[arg-type]


def test_plain_names_keep_their_schema_1_keys() -> None:
    for name in ("default", "emails", "owner", "nightly-sync", "a.b@c+d_e:f", "sched", "x" * 200):
        assert queue_tag(name) == name
        assert schedule_tag(name) == name
    for name in ("due", "owner:team", "owner:", "~", "~647565"):
        assert schedule_tag(name).startswith("~") and schedule_tag(name) != name
    for name in ("{", "}", "a{b}", "{g}", "~x"):
        assert queue_tag(name).startswith("~") and "{" not in queue_tag(name) and "}" not in queue_tag(name)


async def test_lua_escapes_names_as_python_does(client: aioredis.Redis) -> None:
    probe = script_source("_names") + "\nreturn {queue_tag(ARGV[1]), schedule_tag(ARGV[1])}"
    for name in (*HOSTILE, "a b", "\n", "owner:x"):
        assert await client.eval(probe, 0, name) == [queue_tag(name), schedule_tag(name)], name


async def test_every_queue_keeps_one_whole_hash_tag(url: str, client: aioredis.Redis) -> None:
    async with opened(url) as b:
        for name in HOSTILE:
            await b.job_enqueue_many(drafts=[JobDraft(id=new_id(), task="t", queue=name, payload=None)], now=T0)
            await b.queue_update(queue=name, paused=True)
        prefix = b.prefix  # type: ignore[attr-defined]
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
    tags: dict[str, set[str]] = {}
    for key in keys:
        rest = key[len(prefix) :]
        assert rest.startswith("{"), key
        tag, _, tail = rest[1:].partition("}")
        assert key_slot(key.encode()) == key_slot(tag.encode())
        if tag != "g":
            assert tag.startswith("q:") and "{" not in tag, key
            tags.setdefault(tag, set()).add(tail.split(":", 2)[1])
    # One tag per queue, and no two queues share one.
    assert set(tags) == {"q:" + queue_tag(name) for name in HOSTILE}
    assert all(kinds == {"job", "pending", "all", "settings"} for kinds in tags.values()), tags


async def _downgrade_to_schema_1(b: Backend, client: aioredis.Redis) -> None:
    """Put the keys of names that changed where schema 1 kept them, as a schema-1 taskyard
    (and its failed stores of `due` / `owner:team`) left them."""
    k = Keys(b.prefix)  # type: ignore[attr-defined]
    g = k.global_base
    for name in ("due", "owner:team"):
        await client.delete(g + "sched:" + name)  # what the failed schema-1 store did first
        await client.rename(k.schedule(name), g + "sched:" + name)
    for queue in ("a{b}", "}"):
        old = f"{k.prefix}{{q:{queue}}}:"
        new = k.queue_base(queue)
        for job_id in await client.zrange(new + "all", 0, -1):
            await client.rename(new + "job:" + job_id, old + "job:" + job_id)
        for name in QUEUE_KEY_NAMES:
            if await client.exists(new + name):
                await client.rename(new + name, old + name)
    await client.set(k.schema, 1)


async def test_schema_1_keys_are_migrated_on_open(url: str, client: aioredis.Redis) -> None:
    async with opened(url) as b:
        await b.schedule_upsert(schedule=sched("due", owner="team"))
        await b.schedule_upsert(schedule=sched("owner:team", owner="other"))
        await b.schedule_upsert(schedule=sched("plain", owner="team"))
        jobs = {}
        for queue in ("a{b}", "}", "plain"):
            (jobs[queue],) = await b.job_enqueue_many(
                drafts=[JobDraft(id=new_id(), task="t", queue=queue, payload=None)], now=T0
            )
        await _downgrade_to_schema_1(b, client)
    # The schema-1 damage: the due zset and team's owner set were replaced by hashes.
    k = Keys(b.prefix)  # type: ignore[attr-defined]
    assert await client.type(k.sched_due) == "hash"
    assert await client.type(k.global_base + "sched:owner:team") == "hash"

    async with opened(url) as b:
        assert await client.get(k.schema) == str(SCHEMA_VERSION)
        assert await client.type(k.sched_due) == "zset"
        for name, owner in (("due", "team"), ("owner:team", "other"), ("plain", "team")):
            got = await b.schedule_get(name=name)
            assert got is not None and got.owner == owner
        assert [s.name for s in await b.schedules_list(owner="team")] == ["due", "plain"]
        assert [s.name for s in await b.schedules_list(owner="other")] == ["owner:team"]
        assert [s.name for s in await b.schedules_due(now=at(60))] == ["due", "owner:team", "plain"]
        for queue, job in jobs.items():
            assert await b.job_get(job_id=job.id) == job
            page = await b.jobs_list(filter=JobFilter(queue=queue))
            assert [j.id for j in page.jobs] == [job.id]
            (claimed,) = await b.job_claim(queues=[queue], limit=1, worker_id="w", lease=30, now=T0)
            assert claimed.id == job.id
        # Migrating again (`taskyard migrate`) changes nothing.
        assert await b.migrate() == SCHEMA_VERSION
        assert [s.name for s in await b.schedules_list(owner="team")] == ["due", "plain"]
        assert [s.name for s in await b.schedules_due(now=at(60))] == ["due", "owner:team", "plain"]


async def test_a_schedule_store_that_cannot_be_applied_whole_changes_nothing(
    url: str, client: aioredis.Redis
) -> None:
    async with opened(url) as b:
        await b.schedules_replace_owner(owner="o", schedules=[sched("old", owner="o")])
        k = Keys(b.prefix)  # type: ignore[attr-defined]
        await client.set(k.schedule("b"), "not a hash")  # a key the store cannot write
        with pytest.raises(ResponseError, match="holds another type"):
            await b.schedules_replace_owner(
                owner="o", schedules=[sched("a", owner="o"), sched("b", owner="o")]
            )
        assert [s.name for s in await b.schedules_list(owner="o")] == ["old"]
        assert await b.schedule_get(name="a") is None
        assert [s.name for s in await b.schedules_due(now=at(60))] == ["old"]
