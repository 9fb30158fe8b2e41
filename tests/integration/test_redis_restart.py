"""Fault tests on a Redis server the test owns (AOF on, fsync always): it is killed and
restarted on the same port and directory while a backend, or a worker process, is using it.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import pytest

from taskyard import JobStatus
from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend
from taskyard.core.ids import new_id
from taskyard.core.job import Job, JobDraft
from taskyard.core.settle import Settle
from taskyard.errors import BackendUnavailable
from tests.apps.worker_app import build
from tests.support.processes import read_runlog, stop_process, taskyard_process
from tests.support.redis import owned_server, with_prefix
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def _draft(i: int) -> JobDraft:
    return JobDraft(id=new_id(), task="t", queue="q", payload={"i": i})


async def test_backend_reconnects_after_a_restart_and_loses_nothing(tmp_path: Path) -> None:
    async with owned_server() as server:
        backend = backend_from_url(with_prefix(server.url, "ty:restart:"))
        await backend.open()
        try:
            before = await backend.job_enqueue_many(drafts=[_draft(i) for i in range(50)])
            claimed = await backend.job_claim(queues=["q"], limit=5, worker_id="w", lease=60)
            await backend.wait_for_jobs(queues=["q"], timeout=10)  # subscribe

            server.stop(kill=True)
            with pytest.raises(BackendUnavailable):
                await backend.job_enqueue_many(drafts=[_draft(99)])
            with pytest.raises(BackendUnavailable):
                await backend.ping()
            await server.start()

            # The same instance works again without being reopened.
            await wait_until(lambda: _pings(backend), timeout=30, what="the backend to reconnect")
            for job in before:
                assert await backend.job_get(job_id=job.id) is not None
            counts = {c.queue: c.counts for c in await backend.queue_counts()}
            assert counts["q"][JobStatus.PENDING] == 45
            assert counts["q"][JobStatus.RUNNING] == 5
            # Fenced writes of the claims made before the restart still land.
            answers = await backend.jobs_settle(outcomes=[_completion(j) for j in claimed])
            refused = [x.job_id for x in answers if not x.owned]
            assert refused == []
            # The wake-up subscription came back too: an enqueue releases a waiter again.
            waiter = asyncio.create_task(backend.wait_for_jobs(queues=["q"], timeout=60))
            try:
                while not waiter.done():
                    await backend.job_enqueue_many(drafts=[_draft(100)])
                    await asyncio.wait((waiter,), timeout=0.5)
            finally:
                waiter.cancel()
        finally:
            await backend.close()


def _completion(job: Job) -> Settle:
    return Settle.completed(job.id, job.lease_token or "")


async def _pings(backend: Backend) -> bool:
    try:
        await backend.ping()
    except BackendUnavailable:
        return False
    return True


async def test_worker_rides_out_a_redis_restart(tmp_path: Path) -> None:
    async with owned_server() as server:
        url = with_prefix(server.url, "ty:fault:")
        app = build(url)
        runlog = tmp_path / "runs.log"
        worker_log = tmp_path / "worker.log"
        worker = taskyard_process(
            [
                "--app",
                "tests.apps.worker_app:app",
                "worker",
                "--poll-interval",
                "0.1",
                "--concurrency",
                "4",
                "--lease",
                "15",
            ],
            env={"TASKYARD_BACKEND": url, "TASKYARD_TEST_RUNLOG": str(runlog)},
            log_path=worker_log,
        )
        acked: list[str] = []
        refused = 0
        stop = asyncio.Event()

        async def produce() -> None:
            nonlocal refused
            i = 0
            while not stop.is_set():
                try:
                    job = await app.aenqueue("record", {"i": i})
                    acked.append(job.id)
                except BackendUnavailable:
                    refused += 1
                i += 1
                await asyncio.sleep(0.01)  # pacing, not synchronisation

        producer = asyncio.create_task(produce())
        try:
            await wait_until(
                lambda: len(read_runlog(runlog)) >= 20, timeout=60, what="the worker to run jobs"
            )
            server.stop(kill=True)
            await wait_until(
                lambda: "unavailable" in worker_log.read_text(),
                timeout=30,
                what="the worker to notice the outage",
            )
            at_restart = len(acked)
            await server.start()
            await wait_until(
                lambda: len(acked) >= at_restart + 30, timeout=60, what="enqueues to succeed again"
            )
            stop.set()
            await producer

            async def all_done() -> bool:
                for job_id in acked:
                    job = await app.aget_job(job_id)
                    if job is None or job.status is not JobStatus.COMPLETED:
                        return False
                return True

            await wait_until(all_done, timeout=90, what="every acknowledged job to complete")
        finally:
            stop.set()
            await asyncio.gather(producer, return_exceptions=True)
            code = stop_process(worker)
            await app.aclose()
        assert code == 0
        runs = collections.Counter(r[0] for r in read_runlog(runlog) if r[3] == "run")
        assert all(runs[job_id] == 1 for job_id in acked), [j for j in acked if runs[j] != 1]
        assert worker.returncode == 0
        assert refused > 0  # the outage was real for the producer too
