"""`jobs_settle`, the one owned write: each kind of outcome writes what `Settle` says, only
while its lease token owns the running job; outcomes of one batch are independent, answered
in order, and a batch sent again is refused rather than applied twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from taskyard.backends.protocol import Backend
from taskyard.core.job import Job, JobStatus
from taskyard.core.settle import Settle, Settled, SettleKind

from .factory import LEASE, T0, at, claim_one, enqueue, error, run_one, settle

S = JobStatus
REASON = "the child process running it died (signal 9, SIGKILL)"

#: One outcome of each kind for a running job, and what the stored job must then show.
OUTCOMES: dict[str, tuple[Callable[[Job], Settle], Callable[[Job, Job], None]]] = {}


def _kind(name: str, make: Callable[[Job], Settle]) -> Callable[[Callable[[Job, Job], None]], Any]:
    def register(check: Callable[[Job, Job], None]) -> Callable[[Job, Job], None]:
        OUTCOMES[name] = (make, check)
        return check

    return register


def _token(job: Job) -> str:
    assert job.lease_token is not None
    return job.lease_token


@_kind("completed", lambda j: Settle.completed(j.id, _token(j), {"n": 1}))
def _completed(before: Job, after: Job) -> None:
    assert after.status is S.COMPLETED and after.result == {"n": 1}
    assert after.finished_at == at(5) and after.attempt == before.attempt


@_kind("failed", lambda j: Settle.failed(j.id, _token(j), error(j.attempt), None))
def _failed(before: Job, after: Job) -> None:
    assert after.status is S.FAILED and after.finished_at == at(5)
    assert [e.message for e in after.errors] == ["boom"]


@_kind("retrying", lambda j: Settle.failed(j.id, _token(j), error(j.attempt), at(60)))
def _retrying(before: Job, after: Job) -> None:
    assert after.status is S.SCHEDULED and after.run_at == at(60) and after.finished_at is None
    assert [e.message for e in after.errors] == ["boom"]
    assert after.max_attempts == before.max_attempts


@_kind("snoozed", lambda j: Settle.snoozed(j.id, _token(j), at(90)))
def _snoozed(before: Job, after: Job) -> None:
    assert after.status is S.SCHEDULED and after.run_at == at(90)
    assert after.max_attempts == before.max_attempts + 1 and after.errors == ()


@_kind("cancelled", lambda j: Settle.cancelled(j.id, _token(j), "asked"))
def _cancelled(before: Job, after: Job) -> None:
    assert after.status is S.CANCELLED and after.result == {"cancelled": "asked"}
    assert after.finished_at == at(5)


@_kind("released", lambda j: Settle.released(j.id, _token(j)))
def _released(before: Job, after: Job) -> None:
    assert after.status is S.PENDING and after.attempt == before.attempt - 1
    assert after.worker_id is None and after.errors == ()


@_kind("rescued", lambda j: Settle.rescued(j.id, _token(j), REASON))
def _rescued(before: Job, after: Job) -> None:
    assert after.status is S.PENDING and after.attempt == before.attempt - 1
    assert after.rescues == before.rescues + 1 and after.worker_id is None
    assert [e.type for e in after.errors] == ["WorkerLost"]
    assert after.errors[0].message.startswith(REASON)


async def _stored(backend: Backend, job_id: str) -> Job:
    job = await backend.job_get(job_id=job_id)
    assert job is not None
    return job


def _check_answer(answer: Settled, outcome: Settle, stored: Job) -> None:
    assert answer.job_id == outcome.job_id and answer.owned
    assert stored.lease_token is None and stored.lease_expires_at is None
    assert not stored.cancel_requested
    if answer.job is None:
        assert outcome.kind is SettleKind.COMPLETED  # the only kind a backend may leave bare
    else:
        assert answer.job == stored


@pytest.mark.parametrize("name", list(OUTCOMES))
async def test_each_kind_writes_what_it_says(backend: Backend, name: str) -> None:
    make, check = OUTCOMES[name]
    job = await run_one(backend, max_attempts=3)
    outcome = make(job)
    (answer,) = await backend.jobs_settle(outcomes=[outcome], now=at(5))
    stored = await _stored(backend, job.id)
    _check_answer(answer, outcome, stored)
    check(job, stored)


@pytest.mark.parametrize("name", list(OUTCOMES))
async def test_each_kind_is_refused_without_the_lease(backend: Backend, name: str) -> None:
    make, _ = OUTCOMES[name]
    job = await run_one(backend)
    outcome = make(job.replace(lease_token="not-mine"))
    assert await backend.jobs_settle(outcomes=[outcome], now=at(5)) == [Settled(job.id, owned=False)]
    stored = await _stored(backend, job.id)
    assert stored.status is S.RUNNING and stored.lease_token == job.lease_token
    assert (stored.errors, stored.result, stored.attempt) == ((), None, job.attempt)


async def test_a_refused_outcome_does_not_refuse_the_others(backend: Backend) -> None:
    a = await run_one(backend, seq=0)
    b = await run_one(backend, seq=1)
    c = await run_one(backend, seq=2)
    answers = await backend.jobs_settle(
        outcomes=[
            Settle.completed(a.id, _token(a), "a"),
            Settle.failed(b.id, "stale", error(), None),
            Settle.cancelled(c.id, _token(c), "c"),
        ],
        now=at(5),
    )
    assert [(x.job_id, x.owned) for x in answers] == [(a.id, True), (b.id, False), (c.id, True)]
    sa, sb, sc = [await _stored(backend, j.id) for j in (a, b, c)]
    assert (sa.status, sa.result) == (S.COMPLETED, "a")
    assert sb.status is S.RUNNING and sb.errors == () and sb.lease_token == b.lease_token
    assert sc.status is S.CANCELLED


async def _running(backend: Backend, n: int) -> list[Job]:
    for i in range(n):
        await enqueue(backend, seq=i, max_attempts=3)
    jobs = await backend.job_claim(queues=None, limit=n, worker_id="w1", lease=LEASE, now=T0)
    assert len(jobs) == n
    return sorted(jobs, key=lambda j: j.id)


async def test_a_mixed_batch_answers_each_outcome_in_order(backend: Backend) -> None:
    names = list(OUTCOMES)
    jobs = await _running(backend, len(names) + 1)
    outcomes = [OUTCOMES[name][0](job) for name, job in zip(names, jobs, strict=False)]
    # A refused outcome in the middle of the others.
    stale = jobs[-1]
    outcomes.insert(3, Settle.completed(stale.id, "stale"))
    answers = await backend.jobs_settle(outcomes=outcomes, now=at(5))
    assert [x.job_id for x in answers] == [o.job_id for o in outcomes]
    assert [x.owned for x in answers] == [o.job_id != stale.id for o in outcomes]
    for name, job in zip(names, jobs, strict=False):
        i = next(k for k, o in enumerate(outcomes) if o.job_id == job.id)
        stored = await _stored(backend, job.id)
        _check_answer(answers[i], outcomes[i], stored)
        OUTCOMES[name][1](job, stored)
    assert (await _stored(backend, stale.id)).status is S.RUNNING


async def test_a_batch_sent_again_is_refused_not_repeated(backend: Backend) -> None:
    # A worker retries a batch when the store answered with an outage: the writes that were
    # applied must not be applied twice (no second error, no second snooze, no second release).
    names = list(OUTCOMES)
    jobs = await _running(backend, len(names))
    outcomes = [OUTCOMES[name][0](job) for name, job in zip(names, jobs, strict=True)]
    half = len(outcomes) // 2
    first = await backend.jobs_settle(outcomes=outcomes[:half], now=at(5))
    assert all(x.owned for x in first)
    after_first = [await _stored(backend, j.id) for j in jobs]
    again = await backend.jobs_settle(outcomes=outcomes, now=at(6))
    assert [x.owned for x in again] == [False] * half + [True] * (len(outcomes) - half)
    for job, before, name in zip(jobs[:half], after_first[:half], names, strict=False):
        assert await _stored(backend, job.id) == before, name
    for name, job in zip(names[half:], jobs[half:], strict=True):
        stored = await _stored(backend, job.id)
        assert stored.status is not S.RUNNING, name
    third = await backend.jobs_settle(outcomes=outcomes, now=at(7))
    assert not any(x.owned for x in third)


async def test_an_old_run_and_the_new_one_in_one_batch(backend: Backend) -> None:
    # Rescued and claimed again by the same worker while its last run still settles: the old
    # run's outcome is refused, the new run's written, whatever their order in the batch.
    await enqueue(backend, max_attempts=5)
    old = await claim_one(backend, lease=10)
    assert (await backend.jobs_rescue_expired(now=at(11))).rescued == (old.id,)
    new = await claim_one(backend, now=at(12), lease=10)
    answers = await backend.jobs_settle(
        outcomes=[Settle.completed(old.id, _token(old), 1), Settle.completed(new.id, _token(new), 2)],
        now=at(13),
    )
    assert [x.owned for x in answers] == [False, True]
    stored = await _stored(backend, old.id)
    assert (stored.status, stored.result) == (S.COMPLETED, 2)
    assert [e.type for e in stored.errors] == ["LeaseExpired"]


async def test_an_empty_batch_writes_nothing(backend: Backend) -> None:
    assert await backend.jobs_settle(outcomes=[], now=T0) == []


async def test_unknown_jobs_are_refused(backend: Backend) -> None:
    answer = await settle(backend, Settle.completed("01UNKNOWN00000000000000000", "x"), now=T0)
    assert answer == Settled("01UNKNOWN00000000000000000", owned=False)
