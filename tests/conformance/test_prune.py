"""Pruning finished jobs by retention: keep the newest N and/or drop those older than a time."""

from __future__ import annotations

import pytest

from taskyard.backends.protocol import Backend
from taskyard.core.job import Job, JobFilter, JobStatus
from taskyard.core.settle import Settle

from .factory import at, complete, enqueue, error, run_one, settled_job


async def _completed(
    backend: Backend, n: int, *, start: int = 0, queue: str = "default"
) -> list[Job]:
    jobs = []
    for i in range(n):
        job = await run_one(backend, seq=start + i, queue=queue)
        await complete(backend, job, now=at(100 + start + i))  # finished one second apart
        jobs.append(job)
    return jobs


async def _ids(backend: Backend, status: JobStatus) -> set[str]:
    page = await backend.jobs_list(filter=JobFilter(status=status), limit=1000)
    return {j.id for j in page.jobs}


async def test_keep_last_n_by_finished_at(backend: Backend) -> None:
    jobs = await _completed(backend, 6)
    assert await backend.jobs_prune(status=JobStatus.COMPLETED, keep_last=2) == 4
    assert await _ids(backend, JobStatus.COMPLETED) == {jobs[4].id, jobs[5].id}
    assert await backend.jobs_prune(status=JobStatus.COMPLETED, keep_last=2) == 0
    assert await backend.job_get(job_id=jobs[0].id) is None


async def test_keep_last_zero_deletes_all(backend: Backend) -> None:
    await _completed(backend, 3)
    assert await backend.jobs_prune(status=JobStatus.COMPLETED, keep_last=0) == 3
    assert await _ids(backend, JobStatus.COMPLETED) == set()


async def test_older_than(backend: Backend) -> None:
    jobs = await _completed(backend, 5)  # finished at 100..104
    assert await backend.jobs_prune(status=JobStatus.COMPLETED, older_than=at(102)) == 2
    assert await _ids(backend, JobStatus.COMPLETED) == {j.id for j in jobs[2:]}


async def test_either_rule_selects(backend: Backend) -> None:
    jobs = await _completed(backend, 6)  # finished at 100..105
    # keep_last=4 selects 0,1; older_than=at(103) selects 0,1,2 -> union 0,1,2.
    assert (
        await backend.jobs_prune(status=JobStatus.COMPLETED, keep_last=4, older_than=at(103)) == 3
    )
    assert await _ids(backend, JobStatus.COMPLETED) == {j.id for j in jobs[3:]}


async def test_prune_only_touches_the_given_status(backend: Backend) -> None:
    done = await _completed(backend, 2)
    failed = await run_one(backend, seq=50)
    await settled_job(backend, Settle.failed(failed.id, failed.lease_token, error(), None), now=at(1))
    cancelled = await enqueue(backend, seq=51)
    await backend.job_cancel(job_id=cancelled.id, now=at(1))
    running = await run_one(backend, seq=53)
    pending = await enqueue(backend, seq=52)
    assert await backend.jobs_prune(status=JobStatus.FAILED, keep_last=0) == 1
    assert await backend.job_get(job_id=failed.id) is None
    assert await _ids(backend, JobStatus.COMPLETED) == {j.id for j in done}
    assert await backend.jobs_prune(status=JobStatus.CANCELLED, older_than=at(2)) == 1
    for job in (pending, running):
        assert await backend.job_get(job_id=job.id) is not None


async def test_prune_without_rules_deletes_nothing(backend: Backend) -> None:
    await _completed(backend, 2)
    assert await backend.jobs_prune(status=JobStatus.COMPLETED) == 0


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SCHEDULED])
async def test_prune_of_active_status_is_refused(backend: Backend, status: JobStatus) -> None:
    await enqueue(backend)
    with pytest.raises(ValueError):
        await backend.jobs_prune(status=status, keep_last=0)


async def test_pruned_unique_key_is_free(backend: Backend) -> None:
    job = await run_one(backend, seq=0, unique_key="k")
    await complete(backend, job, now=at(1))
    await backend.jobs_prune(status=JobStatus.COMPLETED, keep_last=0)
    again = await enqueue(backend, seq=1, unique_key="k")
    assert again.id != job.id and again.status is JobStatus.PENDING


async def test_prune_of_one_queue_counts_and_deletes_only_its_jobs(backend: Backend) -> None:
    sync = await _completed(backend, 4, queue="sync")
    other = await _completed(backend, 3, start=10, queue="other")  # newer than every sync job
    assert await backend.jobs_prune(status=JobStatus.COMPLETED, keep_last=2, queue="sync") == 2
    assert await _ids(backend, JobStatus.COMPLETED) == {sync[2].id, sync[3].id} | {j.id for j in other}
    assert await backend.jobs_prune(status=JobStatus.COMPLETED, older_than=at(111), queue="other") == 1
    assert await backend.job_get(job_id=other[0].id) is None
    assert await backend.job_get(job_id=sync[2].id) is not None


async def test_prune_excluding_queues_leaves_them_out_of_count_and_deletion(backend: Backend) -> None:
    sync = await _completed(backend, 3, start=10, queue="sync")  # the newest jobs
    rest = await _completed(backend, 3, queue="default")
    emails = await _completed(backend, 1, start=5, queue="emails")
    n = await backend.jobs_prune(status=JobStatus.COMPLETED, keep_last=2, exclude_queues=["sync"])
    assert n == 2  # the newest two outside sync are emails' and rest[2]
    assert await _ids(backend, JobStatus.COMPLETED) == {j.id for j in sync} | {emails[0].id, rest[2].id}
    n = await backend.jobs_prune(
        status=JobStatus.COMPLETED, older_than=at(200), exclude_queues=["sync", "emails"]
    )
    assert n == 1
    assert await _ids(backend, JobStatus.COMPLETED) == {j.id for j in sync} | {emails[0].id}
