"""Leases judged by the store's clock (`now=None`): what every process compares must come from
one clock — PostgreSQL's `now()`, Redis's `TIME`; SQLite, which has none, goes by what the
rescuer saw stay unrenewed for a whole lease on its own monotonic clock."""

from __future__ import annotations

import asyncio
import time

from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend
from taskyard.core.job import JobStatus
from tests.support.waiting import wait_until

from .factory import enqueue

LEASE = 1.5


async def test_a_renewed_lease_is_kept_and_an_abandoned_one_is_rescued(backend: Backend) -> None:
    job = await enqueue(backend)
    (claimed,) = await backend.job_claim(queues=None, limit=1, worker_id="w", lease=LEASE)
    assert claimed.id == job.id and claimed.lease_token is not None
    # A live worker renews every lease/3: across two whole leases no rescuer takes the job.
    until = time.monotonic() + 2 * LEASE
    while time.monotonic() < until:
        report = await backend.jobs_extend_leases(leases={job.id: claimed.lease_token}, lease=LEASE)
        assert report.lost == frozenset()
        rescue = await backend.jobs_rescue_expired()
        assert rescue.rescued == () and rescue.failed == (), "a live lease was rescued"
        await asyncio.sleep(LEASE / 6)  # the heartbeat's pace, well inside lease/3
    # The worker stops renewing: the job comes back within about one lease.
    started = time.monotonic()

    async def rescued() -> tuple[str, ...]:
        return (await backend.jobs_rescue_expired()).rescued

    assert await wait_until(rescued, timeout=30, interval=0.05, what="the rescue") == (job.id,)
    assert time.monotonic() - started < LEASE + 5
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status is JobStatus.PENDING and stored.rescues == 1
    assert stored.errors[-1].type == "LeaseExpired"


async def test_rescuers_racing_by_the_stores_clock_rescue_once(backend: Backend) -> None:
    jobs = [await enqueue(backend, seq=i) for i in range(10)]
    claimed = await backend.job_claim(queues=None, limit=10, worker_id="dead", lease=0.3)
    assert len(claimed) == 10
    other = backend if backend.url.startswith("memory") else backend_from_url(backend.url)
    if other is not backend:
        await other.open()
    rescued: list[str] = []
    try:
        async def both() -> bool:
            for report in await asyncio.gather(
                backend.jobs_rescue_expired(), other.jobs_rescue_expired()
            ):
                rescued.extend(report.rescued)
            return len(rescued) >= len(jobs)

        await wait_until(both, timeout=30, interval=0.05, what="every job to be rescued")
        for _ in range(3):  # and nothing more, however often they look again
            await both()
    finally:
        if other is not backend:
            await other.close()
    assert sorted(rescued) == sorted(j.id for j in jobs)
    for job in jobs:
        stored = await backend.job_get(job_id=job.id)
        assert stored is not None and stored.rescues == 1 and stored.status is JobStatus.PENDING


async def test_store_time_is_the_servers_clock_or_none(backend: Backend, backend_kind: str) -> None:
    """PostgreSQL and Redis answer with their own clock; SQLite and memory have none."""
    from datetime import UTC, datetime

    before = datetime.now(UTC)
    store = await backend.store_time()
    after = datetime.now(UTC)
    if backend_kind in ("memory", "sqlite"):
        assert store is None
    else:
        assert store is not None and store.tzinfo is not None
        # The servers run on this machine: their clock agrees with ours within the round trip.
        assert before.timestamp() - 1 <= store.timestamp() <= after.timestamp() + 1
