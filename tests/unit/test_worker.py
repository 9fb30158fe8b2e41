"""The worker against the memory backend: outcomes, retries, timeouts, cancellation, drain."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from taskyard import Cancel, FakeClock, JobStatus, Retry, RetryLater, Taskyard, exponential
from taskyard.app import MAX_PAYLOAD_BYTES
from taskyard.backends.memory import MemoryBackend
from taskyard.core.job import MESSAGE_LIMIT, TRACEBACK_LIMIT, Job, Progress, storable_text
from taskyard.services.worker import JobOutcome, Worker, WorkerConfig
from taskyard.testing import drain
from tests.support.waiting import wait_until


class Numbers(BaseModel):
    n: int


@pytest.fixture
def app() -> Taskyard:
    return Taskyard("memory://")


async def test_async_and_sync_handlers_complete_with_results(app: Taskyard) -> None:
    seen_threads: list[str] = []

    @app.task("double")
    async def double(p: Numbers) -> int:
        return p.n * 2

    @app.task("sync-triple")
    def triple(p: Numbers, ctx) -> dict:
        seen_threads.append(threading.current_thread().name)
        return {"value": p.n * 3, "attempt": ctx.attempt}

    a = await app.aenqueue("double", {"n": 4})
    b = await app.aenqueue("sync-triple", Numbers(n=5))
    await drain(app)
    a, b = await app.aget_job(a.id), await app.aget_job(b.id)
    assert (a.status, a.result, a.attempt) == (JobStatus.COMPLETED, 8, 1)
    assert (b.status, b.result) == (JobStatus.COMPLETED, {"value": 15, "attempt": 1})
    assert seen_threads and seen_threads[0] != threading.main_thread().name
    assert a.started_at and a.finished_at and a.finished_at >= a.started_at


async def test_exception_is_recorded_with_traceback_and_retried_per_policy() -> None:
    clock = FakeClock()
    app = Taskyard("memory://", clock=clock)

    @app.task("flaky", retry=Retry(attempts=4, backoff=[60, 300, 900]))
    async def flaky(p: Numbers) -> None:
        raise ValueError(f"bad number {p.n}")

    job = await app.aenqueue("flaky", {"n": 1})
    delays = []
    for _ in range(4):
        await drain(app)
        job = await app.aget_job(job.id)
        if job.status is JobStatus.SCHEDULED:
            delays.append((job.run_at - clock.now()).total_seconds())
            clock.set(job.run_at)
    assert delays == [60, 300, 900]
    assert job.status is JobStatus.FAILED and job.attempt == 4
    assert [e.attempt for e in job.errors] == [1, 2, 3, 4]
    assert job.errors[0].type == "ValueError" and job.errors[0].message == "bad number 1"
    assert "raise ValueError" in job.errors[0].traceback


async def test_exponential_seed_policy_with_worker() -> None:
    clock = FakeClock()
    app = Taskyard("memory://", clock=clock)

    @app.task("flaky", retry=Retry(attempts=4, backoff=exponential(2)))
    async def flaky() -> None:
        raise RuntimeError("nope")

    job = await app.aenqueue("flaky")
    delays = []
    while True:
        await drain(app)
        job = await app.aget_job(job.id)
        if job.status is not JobStatus.SCHEDULED:
            break
        delays.append((job.run_at - clock.now()).total_seconds())
        clock.set(job.run_at)
    assert delays == [2, 4, 8] and job.status is JobStatus.FAILED


async def test_non_retryable_fails_at_once(app: Taskyard) -> None:
    @app.task("strict", retry=Retry(attempts=5, non_retryable=(KeyError,)))
    async def strict() -> None:
        raise KeyError("missing")

    job = await app.aenqueue("strict")
    await drain(app)
    job = await app.aget_job(job.id)
    assert job.status is JobStatus.FAILED and job.attempt == 1


async def test_async_timeout_cancels_handler_and_retries(app: Taskyard) -> None:
    cancelled = asyncio.Event()

    @app.task("slow", timeout=0.05, retry=Retry(attempts=2, backoff=[0]))
    async def slow() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = await app.aenqueue("slow")
    await drain(app, wait_retries=True)
    job = await app.aget_job(job.id)
    assert cancelled.is_set()
    assert job.status is JobStatus.FAILED and job.attempt == 2
    assert [e.type for e in job.errors] == ["TimeoutError", "TimeoutError"]
    assert "timed out after 0.05s" in job.errors[0].message


async def test_retry_later_does_not_use_the_budget() -> None:
    clock = FakeClock()
    app = Taskyard("memory://", clock=clock)

    @app.task("snoozy")
    async def snoozy(p: dict, ctx) -> str:
        if ctx.attempt == 1:
            raise RetryLater(30)
        return "ok"

    job = await app.aenqueue("snoozy", {})
    await drain(app)
    job = await app.aget_job(job.id)
    assert job.status is JobStatus.SCHEDULED and job.run_at == clock.now() + timedelta(seconds=30)
    assert job.max_attempts == 2 and job.errors == ()
    clock.advance(30)
    await drain(app)
    job = await app.aget_job(job.id)
    assert (job.status, job.result) == (JobStatus.COMPLETED, "ok")


async def test_cancel_raised_by_handler(app: Taskyard) -> None:
    @app.task("quitter", retry=Retry(attempts=3))
    async def quitter() -> None:
        raise Cancel("not needed any more")

    job = await app.aenqueue("quitter")
    await drain(app)
    job = await app.aget_job(job.id)
    assert job.status is JobStatus.CANCELLED and job.attempt == 1


async def test_cancel_running_job_stops_its_handler(app: Taskyard) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    @app.task("forever")
    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    job = await app.aenqueue("forever")
    worker = Worker(app, WorkerConfig(lease=3, heartbeat_interval=0.05, poll_interval=0.05))
    outcomes: list[JobOutcome] = []
    worker.subscribe_jobs(outcomes.append)
    await worker.start()
    try:
        await asyncio.wait_for(started.wait(), 5)
        assert (await app.acancel_job(job.id)).cancel_requested
        await asyncio.wait_for(stopped.wait(), 5)
        job = await app.await_job(job.id, timeout=5)
    finally:
        await worker.stop()
    assert job.status is JobStatus.CANCELLED
    assert [o.outcome for o in outcomes] == ["cancelled"]


async def test_progress_is_recorded_while_running(app: Taskyard) -> None:
    release = asyncio.Event()

    @app.task("steps")
    async def steps(p: dict, ctx) -> None:
        ctx.progress(40, "reading")
        await release.wait()

    job = await app.aenqueue("steps", {})
    worker = Worker(app, WorkerConfig(poll_interval=0.05))
    await worker.start()
    try:
        async def progressed() -> Job | None:
            current = await app.aget_job(job.id)
            return current if current is not None and current.progress is not None else None

        current = await wait_until(progressed, timeout=5, interval=0.01, what="the progress")
        assert (current.progress.percent, current.progress.message) == (40.0, "reading")
        release.set()
        await app.await_job(job.id, timeout=5)
    finally:
        await worker.stop()


async def test_stop_drains_in_flight_and_hands_back_unstarted(app: Taskyard) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()

    @app.task("long")
    async def long() -> str:
        started.set()
        await finish.wait()
        return "finished"

    first = await app.aenqueue("long")
    worker = Worker(app, WorkerConfig(concurrency=1, poll_interval=0.05, drain_timeout=5))
    await worker.start()
    await asyncio.wait_for(started.wait(), 5)
    others = [await app.aenqueue("long") for _ in range(3)]
    stopping = asyncio.create_task(worker.stop(timeout=10))
    await wait_until(worker.stopping.is_set, what="stop() to begin")  # before the job may finish
    finish.set()
    await stopping
    assert (await app.aget_job(first.id)).status is JobStatus.COMPLETED
    for job in others:
        assert (await app.aget_job(job.id)).status is JobStatus.PENDING


async def test_drain_timeout_hands_job_back_as_pending(app: Taskyard) -> None:
    started = asyncio.Event()

    @app.task("stuck")
    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()

    job = await app.aenqueue("stuck")
    worker = Worker(app, WorkerConfig(poll_interval=0.05, drain_timeout=0.05))
    await worker.start()
    await asyncio.wait_for(started.wait(), 5)
    await worker.stop(timeout=5)
    job = await app.aget_job(job.id)
    assert job.status is JobStatus.PENDING and job.attempt == 0 and job.lease_token is None


async def test_worker_leaves_jobs_of_tasks_it_does_not_know_pending_and_untouched() -> None:
    producer = Taskyard("memory://")

    @producer.task("elsewhere", retry=Retry(attempts=3))
    async def elsewhere() -> None: ...

    consumer = Taskyard(producer.backend)

    @consumer.task("here")
    async def here() -> str:
        return "ran"

    foreign = await producer.aenqueue("elsewhere", priority=10)
    mine = await consumer.aenqueue("here")
    await drain(consumer)
    assert await producer.aget_job(foreign.id) == foreign
    mine = await consumer.aget_job(mine.id)
    assert mine.status is JobStatus.COMPLETED and mine.result == "ran"


class _ClaimsAnyTask(MemoryBackend):
    """A backend that ignores the claim's task filter, to reach the executor's safety net."""

    async def job_claim(self, **kwargs: Any) -> list[Job]:
        kwargs.pop("tasks", None)
        return await super().job_claim(**kwargs)


async def test_a_claimed_job_of_an_unknown_task_is_handed_back_untouched() -> None:
    backend = _ClaimsAnyTask()
    producer = Taskyard(backend)

    @producer.task("elsewhere", retry=Retry(attempts=1))
    async def elsewhere() -> None: ...

    consumer = Taskyard(backend)
    job = await producer.aenqueue("elsewhere")
    worker = Worker(consumer, WorkerConfig(poll_interval=0.05))
    released = asyncio.Event()
    worker.subscribe_jobs(lambda o: released.set() if o.outcome == "released" else None)
    await worker.start()
    try:
        await asyncio.wait_for(released.wait(), 5)
    finally:
        await worker.stop(timeout=5)
    stored = await producer.aget_job(job.id)
    assert stored is not None
    assert (stored.status, stored.attempt, stored.errors) == (JobStatus.PENDING, 0, ())
    assert stored.lease_token is None and stored.max_attempts == 1


async def test_non_json_result_fails_the_job(app: Taskyard) -> None:
    @app.task("weird")
    async def weird() -> object:
        return object()

    job = await app.aenqueue("weird")
    await drain(app)
    job = await app.aget_job(job.id)
    assert job.status is JobStatus.FAILED and "not JSON" in job.errors[0].message


async def test_result_with_a_lone_surrogate_fails_the_job(app: Taskyard) -> None:
    @app.task("broken-text")
    async def broken_text() -> str:
        return "half an emoji: \ud83d"

    job = await app.aenqueue("broken-text")
    await drain(app)
    job = await app.aget_job(job.id)
    assert job.status is JobStatus.FAILED and job.result is None
    assert "not JSON" in job.errors[0].message and "surrogate" in job.errors[0].message


async def test_errors_and_progress_from_handlers_are_stored_bounded_and_encodable(app: Taskyard) -> None:
    @app.task("rude", retry=Retry(attempts=1))
    async def rude(p: Numbers, ctx) -> None:
        ctx.progress(50, "step \udc80 " + "y" * 10_000)
        raise RuntimeError("bad byte \udcff " + "x" * p.n)

    job = await app.aenqueue("rude", {"n": 1_000_000})
    await drain(app)
    job = await app.aget_job(job.id)
    error = job.errors[0]
    assert job.status is JobStatus.FAILED and error.type == "RuntimeError"
    assert error.message.startswith("bad byte \ufffd x") and error.message.endswith("…[cut]…")
    assert len(error.message) == MESSAGE_LIMIT
    assert len(error.traceback) == TRACEBACK_LIMIT and "…[cut]…" in error.traceback
    assert error.traceback.startswith("Traceback") and 'raise RuntimeError("bad byte' in error.traceback
    json.dumps(job.errors[0].to_json(), ensure_ascii=False).encode()  # servable as UTF-8


def test_progress_messages_are_bounded_and_encodable() -> None:
    progress = Progress.of(50, "step \udc80 " + "y" * 10_000)
    assert progress.message.startswith("step \ufffd y") and len(progress.message) == MESSAGE_LIMIT
    with pytest.raises(ValueError, match="between 0 and 100"):
        Progress.of(101)


def test_storable_text() -> None:
    assert storable_text("fine ✓", 10) == "fine ✓"
    assert storable_text("a\ud800b", 10) == "a\ufffdb"
    assert storable_text("abcdefghijklmnop", 10) == "abc…[cut]…"
    assert storable_text("abcdefghijklmnop", 10, cut_middle=True) == "ab…[cut]…p"


async def test_oversized_result_fails_the_job_and_stores_no_result(app: Taskyard) -> None:
    @app.task("huge")
    async def huge(p: Numbers) -> str:
        return "x" * p.n

    small = await app.aenqueue("huge", {"n": 1000})
    big = await app.aenqueue("huge", {"n": MAX_PAYLOAD_BYTES + 1})
    await drain(app)
    small, big = await app.aget_job(small.id), await app.aget_job(big.id)
    assert small.status is JobStatus.COMPLETED and small.result == "x" * 1000
    assert big.status is JobStatus.FAILED and big.result is None
    assert "the limit is" in big.errors[0].message and len(big.errors) == 1


async def test_stats_count_outcomes(app: Taskyard) -> None:
    @app.task("ok")
    async def ok() -> None: ...

    @app.task("bad")
    async def bad() -> None:
        raise ValueError

    await app.aenqueue_many([("ok", None)] * 3 + [("bad", None)])
    await drain(app)
    rows = await app.backend.stats_read(since=app.clock.now() - timedelta(minutes=2))
    assert sum(r.completed for r in rows) == 3 and sum(r.failed for r in rows) == 1


async def test_sync_timeout_stops_a_python_handler_and_frees_its_thread(app: Taskyard) -> None:
    stopped: list[BaseException] = []

    # 0.5 s, not less: on a loaded machine a thread may not have reached the `try` below
    # within 0.1 s, and the exception then lands before it (stopped, but not recorded here).
    @app.task("spin", timeout=0.5)
    def spin() -> None:
        try:
            while True:
                pass
        except BaseException as exc:
            stopped.append(exc)
            raise

    @app.task("quick")
    def quick() -> str:
        return threading.current_thread().name

    spun = await app.aenqueue("spin")
    worker = Worker(app, WorkerConfig(concurrency=1, poll_interval=0.05, stop_grace=5))
    await worker.start()
    try:
        job = await app.await_job(spun.id, timeout=10)
        assert job.status is JobStatus.FAILED and [e.type for e in job.errors] == ["TimeoutError"]
        done = await app.await_job((await app.aenqueue("quick")).id, timeout=10)
        assert done.status is JobStatus.COMPLETED
        await wait_until(lambda: worker.health()["details"]["stopped_total"] == 1, timeout=10,
                         what="the spinning thread to stop")
        assert [type(e).__name__ for e in stopped] == ["JobTimeoutError"]
        assert worker.health()["details"]["lost_threads"] == 0
    finally:
        await worker.stop(timeout=5)


async def test_threads_blocked_past_their_timeout_are_lost_and_never_block_new_jobs(app: Taskyard) -> None:
    release = threading.Event()

    @app.task("hang", timeout=0.1)
    def hang() -> None:
        release.wait()  # blocked in C: the exception raised in the thread cannot land

    @app.task("quick")
    def quick() -> int:
        return 1

    hung = [await app.aenqueue("hang") for _ in range(3)]
    worker = Worker(app, WorkerConfig(concurrency=1, poll_interval=0.05, stop_grace=0.1, max_lost_threads=0))
    await worker.start()
    try:
        for job in hung:
            assert (await app.await_job(job.id, timeout=10)).status is JobStatus.FAILED
        quick_jobs = [await app.aenqueue("quick") for _ in range(3)]
        for job in quick_jobs:
            assert (await app.await_job(job.id, timeout=10)).status is JobStatus.COMPLETED
        await wait_until(lambda: len(worker.lost_threads) == 3, timeout=10, what="three lost threads")
        health = worker.health()
        assert health["healthy"]  # max_lost_threads=0: counted and shown, never a recycle
        assert sorted(x["job_id"] for x in health["details"]["lost"]) == sorted(j.id for j in hung)
        assert {x["task"] for x in health["details"]["lost"]} == {"hang"}
        assert worker.info().lost_threads == 3
    finally:
        release.set()
        await worker.stop(timeout=5)


async def test_worker_recycles_at_max_lost_threads_and_hands_back_what_it_holds(app: Taskyard) -> None:
    release = threading.Event()
    long_started = asyncio.Event()

    @app.task("hang", timeout=0.1)
    def hang() -> None:
        release.wait()

    @app.task("long")
    async def long() -> None:
        long_started.set()
        await asyncio.Event().wait()

    held = await app.aenqueue("long")
    worker = Worker(app, WorkerConfig(
        concurrency=2, poll_interval=0.05, stop_grace=0.1, max_lost_threads=1, drain_timeout=0.1,
    ))
    await worker.start()
    try:
        await asyncio.wait_for(long_started.wait(), 5)
        hung = await app.aenqueue("hang")
        await asyncio.wait_for(worker.recycled.wait(), 10)
        await asyncio.wait_for(worker.wait_finished(), 10)
        assert worker.recycle_reason is not None and "max_lost_threads=1" in worker.recycle_reason
        health = worker.health()
        assert not health["healthy"] and health["details"]["recycling"] == worker.recycle_reason
        assert (await app.aget_job(hung.id)).status is JobStatus.FAILED
        back = await app.aget_job(held.id)
        assert back.status is JobStatus.PENDING and back.attempt == 0  # handed back, not failed
        after = await app.aenqueue("long")
        assert (await app.aget_job(after.id)).status is JobStatus.PENDING  # it claims no more
    finally:
        release.set()
        await worker.stop(timeout=5)


async def test_a_job_claimed_again_while_its_last_run_settles_keeps_its_new_lease(app: Taskyard) -> None:
    """Rescued and claimed again by the same worker before its previous run has finished
    settling (a dead child, a lost lease), the new run must keep its own bookkeeping: the old
    run's clean-up once removed it, so the new lease was never renewed and expired again."""
    from datetime import UTC, datetime

    settling, second, settle_now, finish = (asyncio.Event() for _ in range(4))

    @app.task("stubborn")
    async def stubborn(payload: dict, ctx: Any) -> str:
        if ctx.job.rescues == 0:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                settling.set()
                await settle_now.wait()  # settles only once the job has been claimed again
                raise
        second.set()
        await finish.wait()  # runs until the test has seen its lease renewed
        return "done"

    job = await app.aenqueue("stubborn", {})
    worker = Worker(app, WorkerConfig(lease=0.6, heartbeat_interval=0.05, poll_interval=0.05))
    outcomes: list[JobOutcome] = []
    worker.subscribe_jobs(outcomes.append)
    await worker.start()
    try:
        await wait_until(lambda: job.id in worker.in_flight, timeout=5, what="the first run")
        # The lease is taken away (as a rescuer would once it expired): the job is pending again.
        report = await app.backend.jobs_rescue_expired(now=datetime.now(UTC) + timedelta(hours=1))
        assert report.rescued == (job.id,)
        await asyncio.wait_for(settling.wait(), 5)

        async def claimed_again() -> bool:
            held = await app.aget_job(job.id)
            return held is not None and held.status is JobStatus.RUNNING and held.rescues == 1

        await wait_until(claimed_again, timeout=5, what="the job claimed again while its last run settles")
        settle_now.set()
        await asyncio.wait_for(second.wait(), 5)
        await wait_until(lambda: [o.outcome for o in outcomes] == ["lost"], timeout=5,
                         what="the first run's clean-up")
        # A renewal after the old run's clean-up sets the lease past `cleaned + lease`; the bug
        # stopped renewals there, so this never came and the lease expired.
        cleaned = datetime.now(UTC)

        async def renewed_since() -> bool:
            held = await app.aget_job(job.id)
            assert held is not None and held.lease_expires_at is not None
            return held.lease_expires_at >= cleaned + timedelta(seconds=0.6)

        await wait_until(renewed_since, timeout=5, interval=0.05, what="a renewal after the clean-up")
        running = await app.aget_job(job.id)
        assert running is not None and running.lease_expires_at is not None
        assert running.lease_expires_at > datetime.now(UTC), "the second run's lease was not renewed"
        finish.set()
        done = await app.await_job(job.id, timeout=10)
    finally:
        settle_now.set()
        finish.set()
        await worker.stop()
    assert done.status is JobStatus.COMPLETED and done.result == "done", done
    assert done.rescues == 1
    assert [o.outcome for o in outcomes] == ["lost", "completed"]
