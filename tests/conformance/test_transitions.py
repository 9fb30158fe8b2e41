"""Every transition of `core.job.TRANSITIONS`, and the moves that must be refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from taskyard.backends.protocol import Backend
from taskyard.core.ids import new_id, new_id_after
from taskyard.core.job import TRANSITIONS, Job, JobDraft, JobStatus, Progress
from taskyard.core.settle import Settle
from taskyard.core.workflow import Edge, Policy, WorkflowDraft
from taskyard.errors import InvalidTransitionError, JobNotFound

from .factory import (
    T0,
    at,
    claim_one,
    complete,
    enqueue,
    error,
    job_in,
    run_one,
    settle,
    settled_job,
)

S = JobStatus
UNKNOWN = "01UNKNOWN00000000000000000"


# -- one driver per allowed transition: it makes the move and returns the job after it ------
async def _scheduled_to_pending(b: Backend) -> tuple[Job, Job]:
    job = await enqueue(b, run_at=at(10))
    assert await b.jobs_promote_due(now=at(10)) == 1
    return job, await _get(b, job.id)


async def _pending_to_running(b: Backend) -> tuple[Job, Job]:
    job = await enqueue(b)
    return job, await claim_one(b)


async def _running_to_completed(b: Backend) -> tuple[Job, Job]:
    job = await run_one(b)
    assert await complete(b, job, result={"ok": True}, now=at(2)) == []
    return job, await _get(b, job.id)


async def _running_to_scheduled(b: Backend) -> tuple[Job, Job]:
    job = await run_one(b, max_attempts=2)
    after = await settled_job(b, Settle.failed(job.id, job.lease_token, error(), at(60)), now=at(1))
    return job, after


async def _running_to_failed(b: Backend) -> tuple[Job, Job]:
    job = await run_one(b)
    after = await settled_job(b, Settle.failed(job.id, job.lease_token, error(), None), now=at(1))
    return job, after


async def _running_to_pending(b: Backend) -> tuple[Job, Job]:
    job = await run_one(b, max_attempts=3, now=T0)
    await b.jobs_rescue_expired(now=at(100))
    return job, await _get(b, job.id)


async def _running_to_cancelled(b: Backend) -> tuple[Job, Job]:
    job = await run_one(b)
    after = await settled_job(b, Settle.cancelled(job.id, job.lease_token, "stop"), now=at(1))
    return job, after


async def _scheduled_to_cancelled(b: Backend) -> tuple[Job, Job]:
    job = await enqueue(b, run_at=at(10))
    return job, await b.job_cancel(job_id=job.id, now=at(1))


async def _pending_to_cancelled(b: Backend) -> tuple[Job, Job]:
    job = await enqueue(b)
    return job, await b.job_cancel(job_id=job.id, now=at(1))


async def _failed_to_pending(b: Backend) -> tuple[Job, Job]:
    _, failed = await _running_to_failed(b)
    return failed, await b.job_retry(job_id=failed.id, now=at(5))


async def _cancelled_to_pending(b: Backend) -> tuple[Job, Job]:
    _, cancelled = await _pending_to_cancelled(b)
    return cancelled, await b.job_retry(job_id=cancelled.id, now=at(5))


async def _chain(b: Backend, *, parent_policy: Policy = Policy.FAIL) -> tuple[Job, Job]:
    """A workflow of two steps, the second after the first: (parent, child blocked)."""
    wf_id = new_id()
    first = new_id_after(None)
    second = new_id_after(first)
    steps = (
        JobDraft(id=first, task="t.a", queue="default", payload=None, workflow_id=wf_id, step="a"),
        JobDraft(id=second, task="t.b", queue="default", payload=None, workflow_id=wf_id, step="b"),
    )
    stored = await b.workflow_enqueue(
        workflow=WorkflowDraft(wf_id, "chain", steps, (Edge(first, second, parent_policy),)), now=T0
    )
    parent, child = stored.steps
    assert child.status is S.BLOCKED
    return parent, child


async def _blocked_to_pending(b: Backend) -> tuple[Job, Job]:
    parent, child = await _chain(b)
    running = await claim_one(b)
    assert running.id == parent.id
    await settle(b, Settle.completed(running.id, running.lease_token or "", None), now=at(1))
    return child, await _get(b, child.id)


async def _blocked_to_cancelled(b: Backend) -> tuple[Job, Job]:
    _, child = await _chain(b)
    return child, await b.job_cancel(job_id=child.id, now=at(1))


async def _cancelled_to_blocked(b: Backend) -> tuple[Job, Job]:
    _, child = await _chain(b)
    cancelled = await b.job_cancel(job_id=child.id, now=at(1))
    return cancelled, await b.job_retry(job_id=child.id, now=at(2))


DRIVERS: dict[tuple[JobStatus, JobStatus], Callable[[Backend], Awaitable[tuple[Job, Job]]]] = {
    (S.SCHEDULED, S.PENDING): _scheduled_to_pending,
    (S.PENDING, S.RUNNING): _pending_to_running,
    (S.RUNNING, S.COMPLETED): _running_to_completed,
    (S.RUNNING, S.SCHEDULED): _running_to_scheduled,
    (S.RUNNING, S.FAILED): _running_to_failed,
    (S.RUNNING, S.PENDING): _running_to_pending,
    (S.RUNNING, S.CANCELLED): _running_to_cancelled,
    (S.SCHEDULED, S.CANCELLED): _scheduled_to_cancelled,
    (S.PENDING, S.CANCELLED): _pending_to_cancelled,
    (S.FAILED, S.PENDING): _failed_to_pending,
    (S.CANCELLED, S.PENDING): _cancelled_to_pending,
    (S.BLOCKED, S.PENDING): _blocked_to_pending,
    (S.BLOCKED, S.CANCELLED): _blocked_to_cancelled,
    (S.CANCELLED, S.BLOCKED): _cancelled_to_blocked,
}


async def _get(b: Backend, job_id: str) -> Job:
    job = await b.job_get(job_id=job_id)
    assert job is not None
    return job


def test_every_transition_has_a_driver() -> None:
    assert set(DRIVERS) == set(TRANSITIONS)


@pytest.mark.parametrize("move", list(DRIVERS), ids=lambda m: f"{m[0].value}->{m[1].value}")
async def test_transition(backend: Backend, move: tuple[JobStatus, JobStatus]) -> None:
    before, after = await DRIVERS[move](backend)
    assert (before.status, after.status) == move
    assert (await _get(backend, after.id)).status is move[1]


# -- details of each move ------------------------------------------------------------------
async def test_complete_stores_result_and_clears_lease(backend: Backend) -> None:
    _, done = await _running_to_completed(backend)
    assert done.result == {"ok": True}
    assert done.finished_at == at(2)
    assert done.lease_token is None and done.lease_expires_at is None
    assert done.attempt == 1


async def test_fail_with_retry_schedules_and_keeps_errors(backend: Backend) -> None:
    _, after = await _running_to_scheduled(backend)
    assert after.run_at == at(60)
    assert after.attempt == 1
    assert after.finished_at is None
    assert after.lease_token is None
    assert [e.message for e in after.errors] == ["boom"]
    assert after.errors[0].type == "ValueError" and after.errors[0].traceback == "Traceback..."
    assert after.errors[0].at == T0 and after.errors[0].attempt == 1
    # It runs again when due, as attempt 2, and the errors accumulate.
    again = await claim_one(backend, now=at(60))
    assert again.attempt == 2
    final = await settled_job(
        backend, Settle.failed(again.id, again.lease_token, error(2, message="again"), None), now=at(61)
    )
    assert final.status is S.FAILED and final.finished_at == at(61)
    assert [e.message for e in final.errors] == ["boom", "again"]
    assert [e.attempt for e in (await _get(backend, final.id)).errors] == [1, 2]


async def test_fail_with_retry_due_now_is_claimable_at_once(backend: Backend) -> None:
    job = await run_one(backend, max_attempts=2)
    await settled_job(backend, Settle.failed(job.id, job.lease_token, error(), at(1)), now=at(1))
    again = await claim_one(backend, now=at(1))
    assert again.id == job.id and again.attempt == 2


async def test_fail_for_good_sets_finished_at(backend: Backend) -> None:
    _, failed = await _running_to_failed(backend)
    assert failed.finished_at == at(1) and failed.lease_token is None
    assert len(failed.errors) == 1


async def test_snooze_grows_max_attempts(backend: Backend) -> None:
    job = await run_one(backend, max_attempts=3)
    after = await settled_job(backend, Settle.snoozed(job.id, job.lease_token, at(30)), now=at(1))
    assert after.status is S.SCHEDULED
    assert after.run_at == at(30)
    assert after.max_attempts == 4
    assert after.attempt == 1
    assert after.errors == ()
    assert after.lease_token is None
    again = await claim_one(backend, now=at(30))
    assert again.attempt == 2 and again.max_attempts == 4


async def test_finish_cancelled(backend: Backend) -> None:
    _, after = await _running_to_cancelled(backend)
    assert after.finished_at == at(1)
    assert after.lease_token is None and after.cancel_requested is False


async def test_cancel_scheduled_and_pending(backend: Backend) -> None:
    _, scheduled = await _scheduled_to_cancelled(backend)
    _, pending = await _pending_to_cancelled(backend)
    for job in (scheduled, pending):
        assert job.status is S.CANCELLED and job.finished_at == at(1)


async def test_cancel_running_only_requests(backend: Backend) -> None:
    job = await run_one(backend)
    after = await backend.job_cancel(job_id=job.id, now=at(1))
    assert after.status is S.RUNNING and after.cancel_requested is True
    assert after.lease_token == job.lease_token
    # The worker finishes it as cancelled once the handler stopped.
    done = await settled_job(backend, Settle.cancelled(job.id, job.lease_token, "asked"), now=at(2))
    assert done.status is S.CANCELLED and done.cancel_requested is False


async def test_cancel_cancelled_is_unchanged(backend: Backend) -> None:
    _, cancelled = await _pending_to_cancelled(backend)
    again = await backend.job_cancel(job_id=cancelled.id, now=at(50))
    assert again.status is S.CANCELLED and again.finished_at == at(1)


@pytest.mark.parametrize(
    "make", [_running_to_completed, _running_to_failed], ids=["completed", "failed"]
)
async def test_cancel_finished_is_refused(backend: Backend, make) -> None:  # type: ignore[no-untyped-def]
    _, job = await make(backend)
    with pytest.raises(InvalidTransitionError):
        await backend.job_cancel(job_id=job.id, now=at(9))
    assert (await _get(backend, job.id)).status is job.status


async def test_cancel_unknown_raises(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await backend.job_cancel(job_id=UNKNOWN, now=T0)


async def test_manual_retry_resets_attempts_keeps_errors(backend: Backend) -> None:
    job = await run_one(backend, max_attempts=1)
    await backend.job_set_progress(
        job_id=job.id, lease_token=job.lease_token, progress=Progress(50.0, "half"), now=at(1)
    )
    failed = await settled_job(backend, Settle.failed(job.id, job.lease_token, error(), None), now=at(2))
    retried = await backend.job_retry(job_id=failed.id, now=at(5))
    assert retried.status is S.PENDING
    assert retried.attempt == 0
    assert len(retried.errors) == 1
    assert retried.finished_at is None and retried.result is None and retried.progress is None
    assert retried.lease_token is None
    again = await claim_one(backend, now=at(5))
    assert again.id == job.id and again.attempt == 1


async def test_manual_retry_of_cancelled_clears_result(backend: Backend) -> None:
    _, cancelled = await _running_to_cancelled(backend)
    retried = await backend.job_retry(job_id=cancelled.id, now=at(5))
    assert retried.status is S.PENDING and retried.result is None and retried.finished_at is None
    assert retried.attempt == 0


@pytest.mark.parametrize("status", ["scheduled", "pending", "running", "completed"])
async def test_manual_retry_refused_from_other_statuses(backend: Backend, status: str) -> None:
    job = await job_in(backend, status)
    with pytest.raises(InvalidTransitionError):
        await backend.job_retry(job_id=job.id, now=at(3))
    assert (await _get(backend, job.id)).status is job.status


async def test_manual_retry_unknown_raises(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await backend.job_retry(job_id=UNKNOWN, now=T0)


async def test_retry_failed_of_one_queue_or_all(backend: Backend) -> None:
    for seq, queue in enumerate(["a", "a", "b"]):
        job = await run_one(backend, seq=seq, queue=queue)
        await settled_job(backend, Settle.failed(job.id, job.lease_token, error(), None), now=at(1))
    _, cancelled = await _pending_to_cancelled(backend)  # not failed: untouched
    assert await backend.jobs_retry_failed(queue="a", now=at(2)) == 2
    counts = {c.queue: c.counts for c in await backend.queue_counts()}
    assert counts["a"].get(S.PENDING) == 2 and counts["b"].get(S.FAILED) == 1
    assert await backend.jobs_retry_failed(now=at(3)) == 1
    assert await backend.jobs_retry_failed(now=at(4)) == 0
    assert (await _get(backend, cancelled.id)).status is S.CANCELLED


async def test_release_hands_back_without_counting(backend: Backend) -> None:
    job = await run_one(backend, max_attempts=2)
    await settle(backend, Settle.released(job.id, job.lease_token), now=at(1))
    after = await _get(backend, job.id)
    assert after.status is S.PENDING
    assert after.attempt == 0
    assert after.lease_token is None and after.lease_expires_at is None
    assert after.errors == ()
    again = await claim_one(backend, now=at(2))
    assert again.attempt == 1


async def test_release_with_lost_lease_is_ignored(backend: Backend) -> None:
    job = await run_one(backend)
    await complete(backend, job)
    await settle(backend, Settle.released(job.id, job.lease_token), now=at(1))
    await settle(backend, Settle.released(UNKNOWN, "x"), now=at(1))
    assert (await _get(backend, job.id)).status is S.COMPLETED


async def test_worker_writes_on_non_running_jobs_are_refused(backend: Backend) -> None:
    pending = await enqueue(backend)
    answers = await backend.jobs_settle(
        outcomes=[
            Settle.failed(pending.id, "x", error(), None),
            Settle.snoozed(pending.id, "x", at(5)),
            Settle.cancelled(pending.id, "x", "r"),
            Settle.completed(pending.id, "x"),
            Settle.released(pending.id, "x"),
            Settle.rescued(pending.id, "x", "r"),
        ],
        now=T0,
    )
    assert [a.owned for a in answers] == [False] * 6
    assert (await _get(backend, pending.id)).status is S.PENDING
