"""`isolation="process"` with real `taskyard worker` processes on every durable backend: hard
kills at the timeout, memory limits, crashing children rescued, progress and cancellation
through a child, payload models and contexts in a child, children replaced after N jobs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from taskyard import JobStatus, Taskyard
from taskyard.core.ids import new_id
from taskyard.core.job import JobDraft
from tests.apps.process_app import build
from tests.support.backends import isolated_url
from tests.support.processes import is_running, stop_process, taskyard_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

DURABLE = ("sqlite", "postgres", "redis", "mysql")
FAST_WORKER = ["--poll-interval", "0.1", "--leader-ttl", "2", "--rescue-interval", "0.5"]


def _worker(url: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None):
    return taskyard_process(
        ["--app", "tests.apps.process_app:app", "worker", *FAST_WORKER, *extra],
        env={"TASKYARD_BACKEND": url, **(env or {})},
        log_path=tmp_path / "worker.log",
    )


async def _settled(app: Taskyard, jobs: list) -> list:
    stored = [await app.aget_job(j.id) for j in jobs]
    return stored if all(j is not None and j.is_finished for j in stored) else []




@pytest.mark.parametrize("kind", DURABLE)
async def test_hanging_jobs_are_killed_at_their_timeout_and_the_queue_moves_on(
    kind: str, tmp_path: Path
) -> None:
    """Six handlers blocked in C far past `timeout=1` on two slots: each child is killed at
    the timeout (three rounds of about a second, not 60 s), the attempts fail by timeout, and
    the six quick jobs behind them (a thread task, run in children by `--isolation process`)
    complete right after."""
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        hanging = await app.aenqueue_many([("hang", {"i": i}) for i in range(6)])
        quick = await app.aenqueue_many([("threaded", {"i": i}) for i in range(6)])
        worker = _worker(url, tmp_path, "--concurrency", "2", "--isolation", "process")
        try:
            done = await wait_until(lambda: _settled(app, hanging + quick), timeout=40, what="every job")
            assert worker.poll() is None
        finally:
            assert stop_process(worker) == 0
        hung, fast = done[:6], done[6:]
        for job in hung:
            assert job.status is JobStatus.FAILED
            assert [e.type for e in job.errors] == ["TimeoutError"]
            assert re.match(r"job timed out after 1(\.0)?s", job.errors[0].message), job.errors[0].message
            assert (job.finished_at - job.started_at).total_seconds() < 5
        for job in fast:
            assert job.status is JobStatus.COMPLETED
            assert job.result != worker.pid  # run in a child, not in the worker
        last_timeout = max(j.finished_at for j in hung)
        assert (max(j.finished_at for j in fast) - last_timeout).total_seconds() < 5
        assert (last_timeout - min(j.started_at for j in hung)).total_seconds() < 20
        await app.aclose()


@pytest.mark.parametrize("kind", DURABLE)
async def test_a_job_past_its_memory_limit_fails_and_the_next_job_runs(kind: str, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        hog = await app.aenqueue("hog", {"mb": 400, "hold": 60})
        after = await app.aenqueue("quick", {})
        worker = _worker(url, tmp_path, "--concurrency", "1")
        try:
            hog_done, after_done = await wait_until(
                lambda: _settled(app, [hog, after]), timeout=40, what="the hog and the next job"
            )
            assert worker.poll() is None  # the worker survives its child
        finally:
            assert stop_process(worker) == 0
        assert hog_done.status is JobStatus.FAILED
        assert [e.type for e in hog_done.errors] == ["MemoryLimitExceeded"]
        assert "past the job's memory limit of 150 MB" in hog_done.errors[0].message
        assert (hog_done.finished_at - hog_done.started_at).total_seconds() < 20  # not the 60 s hold
        assert after_done.status is JobStatus.COMPLETED and after_done.result != worker.pid
        await app.aclose()


@pytest.mark.parametrize("kind", DURABLE)
async def test_a_crashing_child_is_rescued_then_fails_after_max_rescues(kind: str, tmp_path: Path) -> None:
    """SIGSEGV in a child is a lost worker, not a failed attempt: rescued twice
    (max_rescues=2), failed the third time with the crash reason; the jobs around it
    complete and the worker lives on."""
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        pill = await app.aenqueue("segfault", {"how": "ctypes"})
        others = await app.aenqueue_many([("quick", {"i": i}) for i in range(8)])
        worker = _worker(url, tmp_path, "--concurrency", "2")
        try:
            done = await wait_until(lambda: _settled(app, [pill, *others]), timeout=60, what="every job")
            assert worker.poll() is None
        finally:
            assert stop_process(worker) == 0
        crashed = done[0]
        assert (crashed.status, crashed.attempt, crashed.rescues) == (JobStatus.FAILED, 1, 3)
        assert [e.type for e in crashed.errors] == ["WorkerLost"] * 3
        assert crashed.errors[0].message == (
            "the child process running it died (signal 11, SIGSEGV); rescued (1 of 2), "
            "the attempt will run again"
        )
        assert crashed.errors[-1].message.startswith("its worker was lost 3 times (max_rescues=2)")
        assert crashed.errors[-1].message.endswith("last time the child process running it died (signal 11, SIGSEGV)")
        assert all(j.status is JobStatus.COMPLETED and j.attempt == 1 for j in done[1:])
        await app.aclose()


@pytest.mark.parametrize("kind", DURABLE)
async def test_progress_from_a_child_is_recorded_and_cancelling_stops_the_child(
    kind: str, tmp_path: Path
) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        job = await app.aenqueue("steps", {"seconds": 120})
        worker = _worker(url, tmp_path, "--concurrency", "1", "--lease", "3")  # heartbeat every 1 s
        try:
            async def half_way():
                stored = await app.aget_job(job.id)
                return stored if stored.progress is not None else None

            running = await wait_until(half_way, timeout=30, what="the progress report")
            assert running.status is JobStatus.RUNNING and running.progress.percent == 50
            child_pid = int(running.progress.message.rsplit(" ", 1)[1])
            assert child_pid != worker.pid and is_running(child_pid)
            await app.acancel_job(job.id)
            cancelled = await app.await_job(job.id, timeout=30)
            assert cancelled.status is JobStatus.CANCELLED
            await wait_until(lambda: not is_running(child_pid), timeout=10, what="the child to stop")
            assert worker.poll() is None
        finally:
            assert stop_process(worker) == 0
        await app.aclose()


@pytest.mark.parametrize("kind", DURABLE)
async def test_a_payload_model_and_a_context_work_in_a_child(kind: str, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        job = await app.aenqueue("area", {"width": 3, "height": 4})
        # Stored past the enqueue-time check (another version of the app wrote it).
        (bad,) = await app.backend.job_enqueue_many(
            drafts=[JobDraft(id=new_id(), task="area", queue="default", payload={"width": "wide"})]
        )
        worker = _worker(url, tmp_path, "--concurrency", "2")
        try:
            done, invalid = await wait_until(lambda: _settled(app, [job, bad]), timeout=30, what="both jobs")
        finally:
            assert stop_process(worker) == 0
        assert done.status is JobStatus.COMPLETED
        assert {k: done.result[k] for k in ("area", "attempt", "job")} == {"area": 12, "attempt": 1, "job": job.id}
        assert done.result["pid"] != worker.pid
        assert invalid.status is JobStatus.FAILED  # the model's validation, reported from the child
        assert [e.type for e in invalid.errors] == ["ValidationError"]
        await app.aclose()


@pytest.mark.parametrize("kind", DURABLE)
async def test_a_child_is_replaced_after_max_jobs_per_child(kind: str, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        jobs = await app.aenqueue_many([("whoami", {"i": i}) for i in range(5)])
        worker = _worker(
            url, tmp_path, "--concurrency", "1", env={"TASKYARD_WORKER__MAX_JOBS_PER_CHILD": "2"}
        )
        try:
            done = await wait_until(lambda: _settled(app, jobs), timeout=30, what="every job")
        finally:
            assert stop_process(worker) == 0
        pids = [j.result for j in sorted(done, key=lambda j: j.started_at)]
        assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4], pids
        assert worker.pid not in pids
        await app.aclose()


async def test_a_child_runs_on_the_backend_its_worker_was_given(tmp_path: Path) -> None:
    """`taskyard --backend URL worker`: the child processes use URL too, not what their app
    would choose alone (TASKYARD_BACKEND names another store here): a handler in a child that
    enqueues or reads jobs must see the worker's store. The CLI no longer writes the
    environment, so the worker hands the URL to each child."""
    async with isolated_url("sqlite", tmp_path) as url:
        elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
        app = build(url)
        job = await app.aenqueue("backend_in_child", {})
        worker = taskyard_process(
            ["--app", "tests.apps.process_app:app", "--backend", url, "worker", *FAST_WORKER],
            env={"TASKYARD_BACKEND": elsewhere},
            log_path=tmp_path / "worker.log",
        )
        try:
            (done,) = await wait_until(lambda: _settled(app, [job]), timeout=40, what="the job")
        finally:
            assert stop_process(worker) == 0
        assert done.status is JobStatus.COMPLETED, done.errors
        assert done.result == url
        assert not (tmp_path / "elsewhere.db").exists()
