"""Hard time limits for thread-run handlers, with real worker processes on every durable
backend: hung handlers never block quick jobs, a busy loop is stopped, a handler blocked in C
is lost and shown, and at `max_lost_threads` the worker process restarts itself in place.
"""

from __future__ import annotations

import collections
from pathlib import Path

import httpx
import pytest

from taskyard import JobStatus, Taskyard
from tests.apps.timeouts_app import build
from tests.support.backends import isolated_url
from tests.support.processes import read_runlog, stop_process, taskyard_process
from tests.support.redis import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

DURABLE = ("sqlite", "postgres", "redis", "mysql")
APP = "tests.apps.timeouts_app:app"


def _env(url: str, runlog: Path, **worker: object) -> dict[str, str]:
    env = {"TASKYARD_BACKEND": url, "TASKYARD_TEST_RUNLOG": str(runlog), "TASKYARD_WORKER__POLL_INTERVAL": "0.1"}
    env.update({f"TASKYARD_WORKER__{key.upper()}": str(value) for key, value in worker.items()})
    return env


async def _statuses(app: Taskyard, ids: list[str]) -> collections.Counter[str]:
    return collections.Counter([(await app.aget_job(job_id)).status.value for job_id in ids])


@pytest.mark.parametrize("kind", DURABLE)
async def test_quick_jobs_run_while_hung_handlers_time_out(kind: str, tmp_path: Path) -> None:
    """Issue 11: six sync jobs hang past timeout=1 on `--concurrency 2`, then six quick jobs."""
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        runlog = tmp_path / "runs.log"
        hung = await app.aenqueue_many([("hang", {"seconds": 60}) for _ in range(6)])
        quick = await app.aenqueue_many([("quick", {}) for _ in range(6)])
        worker = taskyard_process(
            ["--app", APP, "worker", "--concurrency", "2", "--stop-grace", "0.5", "--max-lost-threads", "0"],
            env=_env(url, runlog), log_path=tmp_path / "worker.log",
        )
        try:
            done = [await app.await_job(job.id, timeout=60) for job in [*hung, *quick]]
        finally:
            assert stop_process(worker) == 0  # six lost threads do not hold up the exit
        hung_done, quick_done = done[:6], done[6:]
        for job in hung_done:
            assert job.status is JobStatus.FAILED
            (error,) = job.errors
            assert error.type == "TimeoutError" and error.message.startswith("job timed out after 1")
        assert all(job.status is JobStatus.COMPLETED for job in quick_done)
        last_timeout = max(j.finished_at for j in hung_done if j.finished_at)
        last_quick = max(j.finished_at for j in quick_done if j.finished_at)
        # Each slot's hung thread was replaced at its timeout: quick jobs did not wait for them.
        assert (last_quick - last_timeout).total_seconds() < 3
        assert all(tag != "woke" for *_, tag in read_runlog(runlog))
        await app.aclose()


@pytest.mark.parametrize("kind", DURABLE)
async def test_a_busy_loop_handler_is_stopped_and_its_thread_ends(kind: str, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        runlog = tmp_path / "runs.log"
        port = free_port()
        spun = await app.aenqueue("spin", {})
        server = taskyard_process(
            ["--app", APP, "run", "--only", "worker", "--port", str(port), "--concurrency", "1"],
            env=_env(url, runlog, stop_grace=5), log_path=tmp_path / "worker.log",
        )
        try:
            job = await app.await_job(spun.id, timeout=60)
            assert job.status is JobStatus.FAILED and job.errors[0].type == "TimeoutError"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                async def stopped() -> dict[str, object] | None:
                    doc = (await http.get("/health/services")).json()
                    details = doc["services"]["worker"]["details"]
                    return details if details["stopped_total"] == 1 else None

                details = await wait_until(stopped, timeout=30, what="the spinning thread to stop")
            assert details["lost_threads"] == 0 and details["lost_total"] == 0
            assert [tag for job_id, _, _, tag in read_runlog(runlog) if job_id == spun.id] == ["start", "stopped"]
        finally:
            assert stop_process(server) == 0
        await app.aclose()


@pytest.mark.parametrize("kind", DURABLE)
async def test_blocked_handlers_are_lost_shown_and_the_worker_restarts_itself(kind: str, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        runlog = tmp_path / "runs.log"
        log_path = tmp_path / "worker.log"
        port = free_port()
        held = await app.aenqueue("hold", {"seconds": 120})
        server = taskyard_process(
            ["--app", APP, "run", "--only", "worker", "--port", str(port), "--concurrency", "3"],
            env=_env(url, runlog, stop_grace=0.5, max_lost_threads=2, drain_timeout=0.5, lease=5),
            log_path=log_path,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                async def worker_doc() -> dict[str, object] | None:
                    try:
                        doc = (await http.get("/health/services")).json()
                    except httpx.TransportError:
                        return None  # not serving yet, or restarting
                    return doc["services"]["worker"]

                await wait_until(lambda: any(r[0] == held.id for r in read_runlog(runlog)), timeout=60,
                                 what="the held job to start")
                (first_worker,) = await app.backend.workers_list()
                first = await app.aenqueue("hang", {"seconds": 120})

                async def one_lost() -> dict[str, object] | None:
                    doc = await worker_doc()
                    return doc if doc and doc["details"]["lost_threads"] == 1 else None  # type: ignore[index]

                doc = await wait_until(one_lost, timeout=30, what="a lost thread in /health/services")
                assert doc["healthy"] is True
                assert [(x["job_id"], x["task"]) for x in doc["details"]["lost"]] == [(first.id, "hang")]  # type: ignore[index]
                await wait_until(lambda: _lost_registered(app, 1), timeout=30,
                                 what="the heartbeat to register the lost thread")
                second = await app.aenqueue("hang", {"seconds": 120})

                async def restarted() -> bool:
                    workers = await app.backend.workers_list()
                    return [w.id for w in workers] not in ([], [first_worker.id])

                await wait_until(restarted, timeout=60, what="a new worker to register after the restart")
                (new_worker,) = await app.backend.workers_list()
                assert new_worker.pid == first_worker.pid == server.pid  # exec'd in place
                assert new_worker.lost_threads == 0
                done = await app.await_job(held.id, timeout=60)
                after = await app.await_job((await app.aenqueue("quick", {})).id, timeout=60)
                doc = await wait_until(worker_doc, timeout=30, what="the restarted process to serve")
                assert doc["details"]["lost_threads"] == 0 and doc["healthy"] is True  # type: ignore[index]
        finally:
            assert stop_process(server) == 0
        # Nothing lost: the held job was handed back and ran again in the new process; the
        # hung ones failed at their timeout (one attempt each).
        runs = read_runlog(runlog)
        boots = [boot for job_id, _, boot, tag in runs if job_id == held.id and tag == "start"]
        assert len(boots) == 2 and boots[0] != boots[1]
        assert (done.status, done.attempt, done.result) == (JobStatus.COMPLETED, 1, boots[1])
        assert after.status is JobStatus.COMPLETED and after.result == boots[1]
        for job_id in (first.id, second.id):
            hung = await app.aget_job(job_id)
            assert hung.status is JobStatus.FAILED and hung.errors[0].type == "TimeoutError"
        text = log_path.read_text()
        assert "recycles itself: 2 lost handler thread(s) reached worker.max_lost_threads=2" in text
        assert "restarting the process" in text
        await app.aclose()


async def _lost_registered(app: Taskyard, count: int) -> bool:
    return [w.lost_threads for w in await app.backend.workers_list()] == [count]
