"""The worker's `Completer`: outcomes written in batches through `jobs_settle` (at once when
no write is in flight, accumulated while one is), retried through an outage for up to its
patience, every submitter answered, everything pending written by `stop()`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pytest

from taskyard.backends.memory import MemoryBackend
from taskyard.clock import utcnow
from taskyard.core.job import Job, JobDraft, JobStatus
from taskyard.core.settle import Settle, Settled
from taskyard.errors import BackendUnavailable
from taskyard.services.worker.completer import Completer
from tests.support.waiting import wait_until


class GatedBackend(MemoryBackend):
    """The memory backend whose `jobs_settle` records each batch, can be held at a gate, and
    can answer a number of calls with an outage first."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.outages = 0

    async def jobs_settle(self, *, outcomes: Sequence[Settle], now: datetime | None = None) -> list[Settled]:
        self.batches.append([o.job_id for o in outcomes])
        if self.outages:
            self.outages -= 1
            raise BackendUnavailable("down for the test")
        if self.gate is not None:
            await self.gate.wait()
        return await super().jobs_settle(outcomes=outcomes, now=now)


async def _running(backend: MemoryBackend, n: int) -> list[Job]:
    drafts = [JobDraft(id=f"01J{i:023d}", task="t", queue="q", payload=None) for i in range(n)]
    await backend.job_enqueue_many(drafts=drafts)
    jobs = await backend.job_claim(queues=["q"], limit=n, worker_id="w", lease=60)
    assert len(jobs) == n
    return jobs


def _done(job: Job) -> Settle:
    assert job.lease_token is not None
    return Settle.completed(job.id, job.lease_token, job.id)


@pytest.fixture
def backend() -> GatedBackend:
    return GatedBackend()


def _completer(backend: GatedBackend, patience: float = 60.0) -> Completer:
    return Completer(lambda: backend, now=utcnow, patience=patience)


async def test_outcomes_submitted_during_a_write_go_in_the_next_batch(backend: GatedBackend) -> None:
    jobs = await _running(backend, 4)
    completer = _completer(backend)
    backend.gate = asyncio.Event()
    completer.start()
    try:
        first = completer.submit(_done(jobs[0]))
        await wait_until(lambda: backend.batches, timeout=10, what="the first write")
        rest = [completer.submit(_done(j)) for j in jobs[1:]]
        assert completer.pending == 3
        backend.gate.set()
        answers = await asyncio.wait_for(asyncio.gather(first, *rest), timeout=10)
    finally:
        await completer.stop()
    assert backend.batches == [[jobs[0].id], [j.id for j in jobs[1:]]]
    assert [a.owned for a in answers] == [True] * 4
    for job in jobs:
        stored = await backend.job_get(job_id=job.id)
        assert stored is not None and stored.status is JobStatus.COMPLETED


async def test_a_batch_is_retried_through_an_outage(backend: GatedBackend) -> None:
    (job,) = await _running(backend, 1)
    backend.outages = 2
    completer = _completer(backend)
    completer.start()
    try:
        answer = await asyncio.wait_for(completer.settle(_done(job)), timeout=10)
    finally:
        await completer.stop()
    assert (answer.job_id, answer.owned) == (job.id, True)
    assert backend.batches == [[job.id]] * 3


async def test_past_its_patience_the_submitters_get_the_error(backend: GatedBackend) -> None:
    (job,) = await _running(backend, 1)
    backend.outages = 1_000
    completer = _completer(backend, patience=0.0)
    completer.start()
    try:
        with pytest.raises(BackendUnavailable):
            await asyncio.wait_for(completer.settle(_done(job)), timeout=10)
    finally:
        await completer.stop()
    stored = await backend.job_get(job_id=job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING


async def test_stop_writes_every_pending_outcome(backend: GatedBackend) -> None:
    jobs = await _running(backend, 3)
    completer = _completer(backend)  # never started: stop() alone must write them
    answers = [completer.submit(_done(j)) for j in jobs]
    await completer.stop()
    assert all(a.done() and a.result().owned for a in answers)
    assert backend.batches == [[j.id for j in jobs]]


async def test_a_refused_outcome_is_answered_not_raised(backend: GatedBackend) -> None:
    (job,) = await _running(backend, 1)
    completer = _completer(backend)
    completer.start()
    try:
        answer = await asyncio.wait_for(completer.settle(Settle.released(job.id, "stale")), timeout=10)
    finally:
        await completer.stop()
    assert answer == Settled(job.id, owned=False)
