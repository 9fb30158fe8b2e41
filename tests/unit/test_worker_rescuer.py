"""Every worker process also rescues expired leases, with no leader: a dead worker's job
comes back even when the dead worker was the maintenance leader and nobody else can lead."""

from __future__ import annotations

from taskyard import Taskyard
from taskyard.backends.memory import MemoryBackend
from taskyard.config import load_settings
from taskyard.core.job import JobStatus
from taskyard.server import TaskServer
from tests.support.waiting import wait_until


def _app(backend: MemoryBackend, ran: list[int]) -> Taskyard:
    app = Taskyard(backend)

    @app.task("work")  # no retry=: one attempt
    async def work(payload: dict) -> None:
        ran.append(1)

    return app


def test_a_worker_registers_a_rescuer_without_a_leader_gate() -> None:
    settings = load_settings(backend="memory://", http={"enabled": False})
    server = TaskServer(Taskyard("memory://"), settings, only="worker")
    server.build()
    rescuer = server.manager.get("worker-rescuer").service
    assert rescuer.config.leader_only is False and rescuer.leader is None  # type: ignore[attr-defined]
    assert server.leaders == {}
    both = TaskServer(Taskyard("memory://"), settings, only="worker,maintenance")
    both.build()
    assert both.manager.get("rescuer").service.config.leader_only  # type: ignore[attr-defined]
    assert not both.manager.get("worker-rescuer").service.config.leader_only  # type: ignore[attr-defined]


async def test_a_job_of_a_dead_leader_runs_again_without_a_new_leader() -> None:
    backend = MemoryBackend()
    # The dead process held the maintenance lease for a long time: nobody else can lead.
    assert await backend.leader_attempt_elect(name="maintenance", holder="dead", ttl=3600)
    ran: list[int] = []
    app = _app(backend, ran)
    job = await app.aenqueue("work", {})
    (claimed,) = await backend.job_claim(queues=None, limit=1, worker_id="dead", lease=0.2)
    settings = load_settings(
        backend="memory://", http={"enabled": False}, maintenance={"rescue_interval": 0.05},
        worker={"poll_interval": 0.05},
    )
    server = TaskServer(app, settings, only="worker,maintenance")
    await server.start()
    try:
        done = await wait_until(
            lambda: _finished(backend, job.id), timeout=10, what="the dead worker's job to complete"
        )
        assert not server.leaders["maintenance"].is_leader
    finally:
        await server.stop()
    assert done.status is JobStatus.COMPLETED and done.attempt == claimed.attempt == 1
    assert done.rescues == 1 and [e.type for e in done.errors] == ["LeaseExpired"]
    assert ran == [1]


async def _finished(backend: MemoryBackend, job_id: str):  # type: ignore[no-untyped-def]
    job = await backend.job_get(job_id=job_id)
    return job if job is not None and job.is_finished else None

