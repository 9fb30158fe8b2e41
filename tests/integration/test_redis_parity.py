"""The Redis backend against the executable specification: one scripted life of many jobs,
run on the memory backend and on Redis, must observe exactly the same things.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskyard.backends.memory import MemoryBackend
from taskyard.backends.protocol import Backend
from taskyard.core.cluster import WorkerInfo
from taskyard.core.ids import new_id
from taskyard.core.job import (
    AttemptError,
    Job,
    JobDraft,
    JobFilter,
    JobStatus,
    Progress,
)
from taskyard.core.queue import RateLimit, StatsRow
from taskyard.core.schedule import Schedule
from taskyard.core.settle import Settle
from taskyard.errors import InvalidTransitionError, JobNotFound, LeaseLost
from tests.support.backends import opened_backend
from tests.support.redis import isolated_url

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = JobStatus


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
async def redis_backend() -> AsyncIterator[Backend]:
    async with isolated_url() as url, opened_backend(url) as backend:
        yield backend


def view(job: Job | None) -> Any:
    """What must agree between backends (the lease token is random by design)."""
    return None if job is None else job.to_json()


class Life:
    """Runs the scripted scenario on one backend and records every observation."""

    def __init__(self, backend: Backend, ids: list[str]) -> None:
        self.b = backend
        self.ids = iter(ids)
        self.seen: list[Any] = []
        self.tokens: dict[str, str] = {}

    def note(self, label: str, value: Any) -> None:
        self.seen.append((label, value))

    def draft(self, queue: str = "q", **kw: Any) -> JobDraft:
        return JobDraft(
            id=next(self.ids),
            task=kw.pop("task", "t"),
            queue=queue,
            payload=kw.pop("payload", {"n": 1}),
            **kw,
        )

    async def enqueue(self, label: str, *drafts: JobDraft, now: datetime) -> list[Job]:
        jobs = await self.b.job_enqueue_many(drafts=list(drafts), now=now)
        self.note(label, [view(j) for j in jobs])
        return jobs

    async def claim(
        self, label: str, queues: list[str] | None, limit: int, now: datetime, lease: float = 30
    ) -> list[Job]:
        jobs = await self.b.job_claim(
            queues=queues, limit=limit, worker_id="w1", lease=lease, now=now
        )
        for job in jobs:
            assert job.lease_token
            self.tokens[job.id] = job.lease_token
        self.note(label, [view(j) for j in jobs])
        return jobs

    async def attempt(self, label: str, coro: Any) -> Any:
        try:
            result = await coro
        except (InvalidTransitionError, JobNotFound, LeaseLost, ValueError) as exc:
            self.note(label, type(exc).__name__)
            return None
        self.note(label, view(result) if isinstance(result, Job) or result is None else result)
        return result

    async def state(self, label: str) -> None:
        counts = await self.b.queue_counts()
        self.note(
            label + ":counts",
            [(c.queue, sorted((k.value, v) for k, v in c.counts.items())) for c in counts],
        )
        page = await self.b.jobs_list(filter=JobFilter(), limit=1000)
        self.note(label + ":jobs", [view(j) for j in page.jobs])


async def scenario(b: Backend, ids: list[str]) -> list[Any]:
    life = Life(b, ids)
    # enqueue: pending, scheduled, priorities, unique, idempotent id
    a, s1, hi, _ = await life.enqueue(
        "enqueue",
        life.draft(priority=0, max_attempts=3),
        life.draft(run_at=at(60), tags=("x", "y")),
        life.draft(priority=7, timeout=2.5),
        life.draft(unique_key="k1", payload=[1, 2]),
        now=at(0),
    )
    await life.enqueue("unique", life.draft(unique_key="k1"), now=at(1))
    await life.enqueue(
        "same-id", JobDraft(id=a.id, task="other", queue="q", payload=None), now=at(1)
    )
    await life.enqueue(
        "other queue", life.draft("r", priority=3), life.draft("r", priority=9), now=at(2)
    )
    await life.state("after enqueue")

    # claims honour priority within and across queues
    got = await life.claim("claim 2", ["q", "r"], 2, at(3))
    await life.claim("claim 1 of q", ["q"], 1, at(3))
    await life.state("after claims")

    # heartbeat, progress, complete, fencing
    first = got[0]
    report = await b.jobs_extend_leases(
        leases={first.id: life.tokens[first.id], a.id: "bogus"}, lease=30, now=at(4)
    )
    life.note("extend", (sorted(report.lost), sorted(report.cancel_requested)))
    await life.attempt(
        "progress",
        b.job_set_progress(
            job_id=first.id,
            lease_token=life.tokens[first.id],
            progress=Progress(40, "half"),
            now=at(4),
        ),
    )
    await life.attempt(
        "progress lost",
        b.job_set_progress(job_id=first.id, lease_token="nope", progress=Progress(1), now=at(4)),
    )
    answers = await b.jobs_settle(
        outcomes=[
            Settle.completed(first.id, life.tokens[first.id], {"ok": True}),
            Settle.completed(a.id, "bogus"),
        ],
        now=at(5),
    )
    lost = [x.job_id for x in answers if not x.owned]
    life.note("complete", lost)
    answers = await b.jobs_settle(
        outcomes=[Settle.completed(first.id, life.tokens[first.id], 1)],
        now=at(5),
    )
    lost = [x.job_id for x in answers if not x.owned]
    life.note("complete twice", lost)

    # fail with retry, then final failure; snooze; cancel running; release
    running = [j for j in (await b.jobs_list(filter=JobFilter(status=S.RUNNING))).jobs]
    life.note("running", sorted(j.id for j in running))
    err = AttemptError(attempt=1, type="Boom", message="boom", traceback="tb", at=at(6))
    for job in sorted(running, key=lambda j: j.id):
        token = life.tokens[job.id]
        if job.id == hi.id:
            await life.attempt(
                "fail final",
                _settle(b, Settle.failed(job.id, token, err, None), at(6)),
            )
        else:
            await life.attempt(
                "fail retry",
                _settle(b, Settle.failed(job.id, token, err, at(10)), at(6)),
            )
    await life.attempt(
        "fail lost", _settle(b, Settle.failed(hi.id, 'x', err, None), at(6))
    )
    await life.state("after fails")
    await life.attempt("promote early", b.jobs_promote_due(now=at(9)))
    await life.attempt("promote", b.jobs_promote_due(now=at(10)))
    more = await life.claim("claim after promote", None, 10, at(11))
    for job in sorted(more, key=lambda j: j.id):
        token = life.tokens[job.id]
        if job.queue == "r":
            await life.attempt(
                "snooze", _settle(b, Settle.snoozed(job.id, token, at(20)), at(12))
            )
        elif job.unique_key:
            await life.attempt("cancel running", b.job_cancel(job_id=job.id, now=at(12)))
            report = await b.jobs_extend_leases(leases={job.id: token}, lease=30, now=at(12))
            life.note("cancel seen", sorted(report.cancel_requested))
            await life.attempt(
                "finish cancelled",
                _settle(b, Settle.cancelled(job.id, token, "asked"), at(13)),
            )
        else:
            await life.attempt(
                "release", _settle(b, Settle.released(job.id, token), at(12))
            )
    await life.state("after settle")
    # unique key is free again once its holder finished
    await life.enqueue("unique reuse", life.draft(unique_key="k1"), now=at(14))

    # cancel pending/scheduled, invalid transitions, not found
    await life.attempt("cancel scheduled", b.job_cancel(job_id=s1.id, now=at(15)))
    await life.attempt("cancel again", b.job_cancel(job_id=s1.id, now=at(15)))
    await life.attempt("cancel completed", b.job_cancel(job_id=first.id, now=at(15)))
    await life.attempt("cancel missing", b.job_cancel(job_id=new_id(1), now=at(15)))
    await life.attempt("retry completed", b.job_retry(job_id=first.id, now=at(15)))
    await life.attempt("retry cancelled", b.job_retry(job_id=s1.id, now=at(16)))
    await life.attempt("retry failed all", b.jobs_retry_failed(now=at(16)))
    await life.state("after retries")

    # lease expiry: rescued, and failed when out of attempts
    await life.claim("claim for rescue", None, 100, at(30), lease=5)
    report = await b.jobs_rescue_expired(now=at(35))
    life.note("rescue at expiry", (sorted(report.rescued), sorted(report.failed)))
    report = await b.jobs_rescue_expired(now=at(35.001))
    life.note("rescue", (sorted(report.rescued), sorted(report.failed)))
    await life.state("after rescue")

    # queue settings: pause, concurrency, rate limit
    await life.enqueue("bulk", *[life.draft("c", priority=i % 3) for i in range(12)], now=at(40))
    settings = await b.queue_update(queue="c", paused=True)
    life.note("pause", settings)
    await life.claim("claim paused", ["c"], 5, at(41))
    life.note("resume", await b.queue_update(queue="c", paused=False, concurrency=2))
    await life.claim("claim conc", ["c"], 5, at(41))
    life.note(
        "rate", await b.queue_update(queue="c", concurrency=None, rate_limit=RateLimit(3, 10))
    )
    await life.claim("claim rate", ["c"], 5, at(41))
    await life.claim("claim rate same window", ["c"], 5, at(42))
    await life.claim("claim rate next window", ["c"], 5, at(50))
    life.note("queues", await b.queues_list())
    life.note("queue get", await b.queue_get(queue="nope"))

    # listing: filters and pagination
    seen_ids: list[str] = []
    cursor = None
    while True:
        page = await b.jobs_list(filter=JobFilter(queue="c"), limit=5, cursor=cursor)
        seen_ids += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    life.note("pages", seen_ids)
    for f in (
        JobFilter(status=S.RUNNING),
        JobFilter(task="other"),
        JobFilter(created_after=at(14), created_before=at(41)),
    ):
        life.note(f"filter {f}", [j.id for j in (await b.jobs_list(filter=f, limit=3)).jobs])

    # prune
    await b.jobs_settle(
        outcomes=[Settle.completed(j, t) for j, t in life.tokens.items()],
        now=at(60),
    )
    await life.state("before prune")
    life.note("prune keep", await b.jobs_prune(status=S.COMPLETED, keep_last=2))
    life.note("prune old", await b.jobs_prune(status=S.FAILED, older_than=at(36)))
    await life.state("after prune")

    # schedules
    sched = Schedule(name="n1", task="t", every=60, owner="o", next_fire_at=at(100), payload=[])
    await b.schedule_upsert(schedule=sched)
    await b.schedule_upsert(
        schedule=Schedule(name="n2", task="t", cron="* * * * *", enabled=False, next_fire_at=at(50))
    )
    await b.schedules_replace_owner(
        owner="o2",
        schedules=[Schedule(name="n3", task="t", every=5, owner="o2", next_fire_at=at(90))],
    )
    life.note("sched list", [s.to_json() for s in await b.schedules_list()])
    life.note("sched owner", [s.name for s in await b.schedules_list(owner="o")])
    life.note("due", [s.name for s in await b.schedules_due(now=at(95))])
    life.note(
        "fire", await b.schedule_record_fire(name="n3", fire_time=at(90), next_fire_at=at(95))
    )
    life.note(
        "fire again", await b.schedule_record_fire(name="n3", fire_time=at(90), next_fire_at=at(95))
    )
    life.note(
        "fire missing", await b.schedule_record_fire(name="zz", fire_time=at(90), next_fire_at=None)
    )
    life.note("get", (await b.schedule_get(name="n3")).to_json())  # type: ignore[union-attr]
    await b.schedules_replace_owner(owner="o2", schedules=[])
    life.note("delete owner", await b.schedules_delete_owner(owner="o"))
    life.note("delete", (await b.schedule_delete(name="n2"), await b.schedule_delete(name="n2")))
    life.note("sched left", [s.name for s in await b.schedules_list()])

    # leadership
    life.note("elect a", await b.leader_attempt_elect(name="L", holder="a", ttl=10, now=at(0)))
    life.note("elect b", await b.leader_attempt_elect(name="L", holder="b", ttl=10, now=at(5)))
    life.note("renew a", await b.leader_attempt_elect(name="L", holder="a", ttl=10, now=at(5)))
    life.note("leader", await b.leader_get(name="L", now=at(6)))
    life.note(
        "elect b late", await b.leader_attempt_elect(name="L", holder="b", ttl=10, now=at(16))
    )
    await b.leader_resign(name="L", holder="a")
    life.note("leader after wrong resign", await b.leader_get(name="L", now=at(17)))
    await b.leader_resign(name="L", holder="b")
    life.note("leader after resign", await b.leader_get(name="L", now=at(17)))

    # workers and stats
    for i, beat in ((1, at(10)), (2, at(20))):
        info = WorkerInfo(
            id=f"w{i}",
            host="h",
            pid=i,
            queues=("q",),
            concurrency=4,
            started_at=at(0),
            last_heartbeat=beat,
            current_jobs=("j",),
        )
        await b.worker_heartbeat(info=info)
    life.note("workers", await b.workers_list())
    life.note("prune workers", await b.workers_prune(older_than=at(15)))
    await b.worker_remove(worker_id="w2")
    life.note("workers left", await b.workers_list())
    await b.stats_record(
        rows=[StatsRow(at(0), "q", 2, 1), StatsRow(at(0), "q", 1, 0), StatsRow(at(60), "r", 0, 4)]
    )
    life.note("stats", await b.stats_read(since=at(0)))
    life.note("stats later", await b.stats_read(since=at(30)))
    return life.seen


async def test_redis_matches_memory_backend(redis_backend: Backend) -> None:
    ids = sorted(new_id(1_767_225_600_000 + i) for i in range(200))
    expected = await scenario(MemoryBackend(), ids)
    observed = await scenario(redis_backend, ids)
    for want, got in zip(expected, observed, strict=True):
        assert got == want, want[0]


async def _settle(b: Backend, outcome: Settle, now: datetime) -> Job | str | None:
    """One outcome settled: the job after the write, or "refused"."""
    (answer,) = await b.jobs_settle(outcomes=[outcome], now=now)
    return answer.job if answer.owned else "refused"
