"""Worker processes on every durable backend: SIGKILL mid-job, a frozen (SIGSTOP) worker
fenced off when it wakes, SIGTERM drain, and several workers draining one store with each
job run exactly once (real subprocesses).
"""

from __future__ import annotations

import collections
import signal
from pathlib import Path

import pytest

from taskyard import JobStatus, Taskyard
from tests.apps.worker_app import build
from tests.support.backends import isolated_url
from tests.support.processes import read_runlog, stop_process, taskyard_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

DURABLE = ("sqlite", "postgres", "redis", "mysql")
FAST_WORKER = ["--poll-interval", "0.1", "--leader-ttl", "2", "--rescue-interval", "0.5"]


def _worker(url: str, runlog: Path, tmp_path: Path, *extra: str):
    return taskyard_process(
        ["--app", "tests.apps.worker_app:app", "worker", *FAST_WORKER, *extra],
        env={"TASKYARD_BACKEND": url, "TASKYARD_TEST_RUNLOG": str(runlog)},
        log_path=tmp_path / "workers.log",
    )


async def _counts(app: Taskyard) -> dict[str, int]:
    total: collections.Counter[str] = collections.Counter()
    for per_status in (await app.acounts()).values():
        total.update(per_status)
    return dict(total)


@pytest.mark.parametrize("kind", DURABLE)
async def test_sigkill_mid_job_is_rescued_after_its_lease(kind: str, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        runlog = tmp_path / "runs.log"
        hung = await app.aenqueue("hang-first", {})
        others = await app.aenqueue_many([("record", {"i": i}) for i in range(5)])
        first = _worker(url, runlog, tmp_path, "--lease", "2", "--concurrency", "4")
        try:
            async def hung_and_others_done() -> bool:
                if hung.id not in {r[0] for r in read_runlog(runlog)}:
                    return False
                done = [await app.aget_job(j.id) for j in others]
                return all(j is not None and j.status is JobStatus.COMPLETED for j in done)

            # Kill only once the other jobs' completions are stored: a completion still in the
            # worker's memory would rightly be rescued and run again (at least once).
            await wait_until(hung_and_others_done, timeout=60, what="the other jobs to complete")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            assert (await app.aget_job(hung.id)).status is JobStatus.RUNNING
            second = _worker(url, runlog, tmp_path, "--lease", "2", "--concurrency", "4")
            try:
                job = await app.await_job(hung.id, timeout=60)
            finally:
                assert stop_process(second) == 0
        finally:
            if first.poll() is None:
                first.kill()
        assert job.status is JobStatus.COMPLETED and job.result == "finished"
        assert (job.attempt, job.rescues) == (1, 1)  # a lost worker does not use an attempt
        assert [e.type for e in job.errors] == ["LeaseExpired"]
        runs = read_runlog(runlog)
        assert [(r[1], r[3]) for r in runs if r[0] == hung.id] == [(1, "start"), (1, "start"), (1, "done")]
        for other in others:
            done = await app.aget_job(other.id)
            assert (done.status, done.attempt, done.result) == (JobStatus.COMPLETED, 1, 1)
            assert [r[1] for r in runs if r[0] == other.id] == [1]
        await app.aclose()


@pytest.mark.parametrize("kind", DURABLE)
async def test_a_job_that_kills_its_worker_fails_after_max_rescues(kind: str, tmp_path: Path) -> None:
    """A poison pill is not retried forever: each lost worker counts as a rescue (not an
    attempt), and one loss past `max_rescues` (3) fails the job with a plain reason, while
    the jobs around it complete."""
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        runlog = tmp_path / "runs.log"
        pill = await app.aenqueue("kill-worker", {})
        others = await app.aenqueue_many([("record", {"i": i}) for i in range(20)])
        exits: list[int] = []
        killed: set[int] = set()
        worker = None
        try:
            for _ in range(6):  # a supervisor restarting the worker each time it dies
                worker = _worker(url, runlog, tmp_path, "--lease", "1", "--concurrency", "1")

                async def settled(worker=worker) -> bool:
                    job = await app.aget_job(pill.id)
                    return worker.poll() is not None or job.status is JobStatus.FAILED

                await wait_until(settled, timeout=60, what="the worker to die or the pill to fail")
                if worker.poll() is None:
                    break
                exits.append(worker.returncode)
                killed.add(worker.pid)
            assert worker is not None and worker.poll() is None, "the pill kept killing workers"
            await wait_until(
                lambda: _all_completed(app, others), timeout=60, what="the other jobs to complete"
            )
            assert stop_process(worker) == 0
        finally:
            if worker is not None and worker.poll() is None:
                worker.kill()
        assert exits == [-signal.SIGKILL] * 4
        job = await app.aget_job(pill.id)
        assert (job.status, job.attempt, job.rescues) == (JobStatus.FAILED, 1, 4)
        assert [e.type for e in job.errors] == ["LeaseExpired"] * 4
        assert job.errors[-1].message.startswith("its worker was lost 4 times")
        assert [r[1] for r in read_runlog(runlog) if r[0] == pill.id] == [1, 1, 1, 1]
        # At least once: a job runs again only if a killed worker ran it (its completion may
        # not have been written yet when the pill killed the process).
        runs: dict[str, list[int]] = collections.defaultdict(list)
        for job_id, _, pid, _ in read_runlog(runlog):
            if job_id != pill.id:
                runs[job_id].append(pid)
        assert set(runs) == {j.id for j in others}
        assert all(pid in killed for pids in runs.values() for pid in pids[:-1]), runs
        await app.aclose()


async def _all_completed(app: Taskyard, jobs: list) -> bool:
    stored = [await app.aget_job(j.id) for j in jobs]
    return all(j is not None and j.status is JobStatus.COMPLETED for j in stored)


@pytest.mark.parametrize("kind", DURABLE)
async def test_a_frozen_worker_is_fenced_off_when_it_wakes(kind: str, tmp_path: Path) -> None:
    """SIGSTOP a worker mid-job past its lease: another worker reruns and completes the job;
    after SIGCONT the stale owner's writes are refused and it stops its handler, so the
    stored outcome stays the new owner's."""
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        runlog, log = tmp_path / "runs.log", tmp_path / "workers.log"
        job = await app.aenqueue("stall-first", {"seconds": 3600})
        frozen = _worker(url, runlog, tmp_path, "--lease", "2", "--concurrency", "2")
        rescuer = None
        try:
            await wait_until(lambda: read_runlog(runlog), timeout=60, what="the first attempt")
            frozen.send_signal(signal.SIGSTOP)
            rescuer = _worker(url, runlog, tmp_path, "--lease", "2", "--concurrency", "2")
            done = await app.await_job(job.id, timeout=60)
            assert (done.status, done.result) == (JobStatus.COMPLETED, "attempt 1, rescues 1")

            frozen.send_signal(signal.SIGCONT)
            lost = f"lease of job {job.id} was lost"
            await wait_until(lambda: lost in log.read_text(), timeout=30, what="the woken worker to notice")
            assert stop_process(frozen) == 0
        finally:
            if frozen.poll() is None:
                frozen.send_signal(signal.SIGCONT)
                frozen.kill()
            if rescuer is not None:
                assert stop_process(rescuer) == 0
        after = await app.aget_job(job.id)
        assert (after.status, after.result, after.rescues) == (JobStatus.COMPLETED, "attempt 1, rescues 1", 1)
        assert [e.type for e in after.errors] == ["LeaseExpired"]
        runs = [(attempt, pid, tag) for job_id, attempt, pid, tag in read_runlog(runlog) if job_id == job.id]
        assert [(a, t) for a, _, t in runs] == [(1, "start"), (1, "start"), (1, "done")]
        assert runs[0][1] == frozen.pid and runs[1][1] != frozen.pid
        await app.aclose()


@pytest.mark.parametrize("kind", DURABLE)
async def test_sigterm_lets_the_running_job_finish_and_leaves_the_rest_pending(
    kind: str, tmp_path: Path
) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        runlog = tmp_path / "runs.log"
        jobs = await app.aenqueue_many([("slow", {"seconds": 1.5}) for _ in range(3)])
        proc = _worker(url, runlog, tmp_path, "--concurrency", "1", "--drain-timeout", "30")
        try:
            await wait_until(lambda: len(read_runlog(runlog)) >= 1, timeout=60, what="a job to start")
            started = read_runlog(runlog)[0][0]
            assert stop_process(proc, signal.SIGTERM, timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        statuses = {j.id: (await app.aget_job(j.id)).status for j in jobs}
        assert statuses.pop(started) is JobStatus.COMPLETED
        assert set(statuses.values()) == {JobStatus.PENDING}
        assert [r[3] for r in read_runlog(runlog)] == ["start", "done"]
        await app.aclose()


@pytest.mark.parametrize(
    ("kind", "workers", "count"),
    [("sqlite", 2, 2000), ("sqlite", 4, 20000), ("postgres", 4, 20000), ("redis", 4, 20000), ("mysql", 4, 20000)],
)
async def test_several_workers_run_each_job_exactly_once(
    kind: str, workers: int, count: int, tmp_path: Path
) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        runlog = tmp_path / "runs.log"
        await app.open()
        procs = [_worker(url, runlog, tmp_path, "--concurrency", "20") for _ in range(workers)]
        try:
            async def registered() -> bool:
                return len(await app.backend.workers_list()) == workers

            # Every worker is up before the jobs arrive, so they compete for them.
            await wait_until(registered, timeout=60, what=f"{workers} workers to register")
            ids: list[str] = []
            for start in range(0, count, 1000):
                batch = await app.aenqueue_many(
                    [("record", {"i": i}) for i in range(start, min(start + 1000, count))]
                )
                ids.extend(j.id for j in batch)

            async def all_done() -> bool:
                return (await _counts(app)).get("completed", 0) >= count

            await wait_until(all_done, timeout=300, interval=0.5, what=f"{count} jobs to complete")
        finally:
            codes = [stop_process(p) for p in procs]
        assert codes == [0] * workers
        runs = collections.Counter(r[0] for r in read_runlog(runlog))
        assert len(runs) == count and set(runs) == set(ids)
        assert max(runs.values()) == 1, [k for k, v in runs.items() if v > 1][:5]
        assert len({r[2] for r in read_runlog(runlog)}) >= 2  # the workers shared the work
        totals = await _counts(app)
        assert totals.get("completed") == count and sum(totals.values()) == count
        await app.aclose()
