"""PostgreSQL restarts under a live backend and a live worker process, on a server the test
owns: the pool and the LISTEN connection recover without restarting anything, and every job
whose enqueue was acknowledged completes exactly once.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskyard import JobStatus
from taskyard.backends.postgres import PostgresBackend
from taskyard.core.job import JobDraft
from taskyard.errors import BackendUnavailable
from tests.apps.worker_app import build
from tests.support.postgres import OwnedServer, owned_server, schema_url
from tests.support.processes import read_runlog, stop_process, taskyard_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[OwnedServer]:
    with owned_server() as server:
        yield server


def _draft(i: int) -> JobDraft:
    from taskyard.core.ids import new_id

    return JobDraft(id=new_id(), task="record", queue="default", payload={"i": i})


async def _eventually(coro_fn, *, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """Call `coro_fn()` until it stops raising `BackendUnavailable` (the outage is over)."""
    answer: list[Any] = []

    async def answered() -> bool:
        try:
            answer.append(await coro_fn())
        except BackendUnavailable:
            return False
        return True

    await wait_until(answered, timeout=timeout, interval=0.1, what="the backend to answer after the restart")
    return answer[0]


async def test_backend_recovers_after_restart(server: OwnedServer) -> None:
    backend = PostgresBackend(schema_url(server.url, "restart_backend"))
    await backend.open()
    try:
        (job,) = await backend.job_enqueue_many(drafts=[_draft(0)])
        await backend.wait_for_jobs(queues=None, timeout=0.01)  # starts the listener
        listener = backend._listener
        assert listener is not None
        await asyncio.wait_for(listener.connected.wait(), 10)

        await asyncio.to_thread(server.stop, "fast")
        # While the server is down: a clean, typed error within the pool timeout.
        with pytest.raises(BackendUnavailable):
            await backend.job_get(job_id=job.id)
        await asyncio.to_thread(server.start)

        # The same backend object works again: the pool dropped its dead connections.
        stored = await _eventually(lambda: backend.job_get(job_id=job.id))
        assert stored is not None and stored.status is JobStatus.PENDING
        await backend.ping()
        # And the LISTEN connection came back: an enqueue wakes a waiter at once.
        await asyncio.wait_for(listener.connected.wait(), 30)
        waiter = asyncio.create_task(backend.wait_for_jobs(queues=["default"], timeout=60))
        other = PostgresBackend(backend.url)
        try:
            await other.job_enqueue_many(drafts=[_draft(1)])
        finally:
            await other.close()
        await asyncio.wait_for(waiter, 10)
    finally:
        await backend.close()


async def test_worker_survives_a_restart_and_completes_every_acknowledged_job(
    server: OwnedServer, tmp_path: Path
) -> None:
    url = schema_url(server.url, "restart_worker")
    app = build(url)
    runlog, worker_log = tmp_path / "runs.log", tmp_path / "worker.log"
    worker = taskyard_process(
        ["--app", "tests.apps.worker_app:app", "worker", "--poll-interval", "0.1",
         "--lease", "5", "--leader-ttl", "2", "--rescue-interval", "0.5"],
        env={"TASKYARD_BACKEND": url, "TASKYARD_TEST_RUNLOG": str(runlog)},
        log_path=worker_log,
    )  # fmt: skip
    acknowledged: list[str] = []
    try:
        await app.open()
        for round_ in range(3):
            for i in range(20):
                try:
                    job = await app.aenqueue(
                        "slow", {"seconds": 0.05 * (i % 5), "i": round_ * 100 + i}
                    )
                except BackendUnavailable:
                    continue  # not acknowledged: the caller would retry; we only count the rest
                acknowledged.append(job.id)
            # Restart while the worker is busy with this round (jobs running and waiting).
            await wait_until(
                lambda: any(r[0] in acknowledged[-20:] for r in read_runlog(runlog)),
                timeout=60, what="the worker to start this round",
            )  # fmt: skip
            await asyncio.to_thread(server.stop, "fast")
            await asyncio.to_thread(server.start)

        async def all_completed() -> bool:
            try:
                counts = await app.acounts()
            except BackendUnavailable:
                return False
            return counts.get("default", {}).get("completed", 0) >= len(acknowledged)

        await wait_until(all_completed, timeout=90, interval=0.2, what="every job to complete")
    finally:
        code = stop_process(worker)
        await app.aclose()
    assert code == 0
    runs = collections.Counter(r[0] for r in read_runlog(runlog) if r[3] == "done")
    assert set(acknowledged) <= set(runs)
    assert max(runs.values()) == 1, [k for k, v in runs.items() if v > 1]
    log = worker_log.read_text()
    assert "unavailable" in log.lower() or "lost" in log.lower(), log[-2000:]
