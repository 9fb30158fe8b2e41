"""Worker registry: heartbeat registers and refreshes, remove, list, prune."""

from __future__ import annotations

from dataclasses import replace

from taskyard.backends.protocol import Backend
from taskyard.core.cluster import WorkerInfo

from .factory import T0, at


def info(worker_id: str, beat: float = 0, jobs: tuple[str, ...] = ()) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id,
        host="host-1",
        pid=1234,
        queues=("default", "scans"),
        concurrency=10,
        started_at=T0,
        last_heartbeat=at(beat),
        current_jobs=jobs,
    )


async def test_register_and_refresh(backend: Backend) -> None:
    await backend.worker_heartbeat(info=info("w2"))
    await backend.worker_heartbeat(info=info("w1"))
    assert await backend.workers_list() == [info("w1"), info("w2")]
    await backend.worker_heartbeat(info=info("w1", beat=10, jobs=("j1", "j2")))
    assert await backend.workers_list() == [info("w1", beat=10, jobs=("j1", "j2")), info("w2")]


async def test_remove(backend: Backend) -> None:
    await backend.worker_heartbeat(info=info("w1"))
    await backend.worker_remove(worker_id="w1")
    await backend.worker_remove(worker_id="never-there")
    assert await backend.workers_list() == []


async def test_prune_stale(backend: Backend) -> None:
    await backend.worker_heartbeat(info=info("old", beat=0))
    await backend.worker_heartbeat(info=info("fresh", beat=30))
    assert await backend.workers_prune(older_than=at(30)) == 1
    assert [w.id for w in await backend.workers_list()] == ["fresh"]
    assert await backend.workers_prune(older_than=at(30)) == 0


async def test_heartbeat_registers_the_task_names_a_worker_knows(backend: Backend) -> None:
    knows = replace(info("w1"), tasks=("images.resize", "mail.send"))
    await backend.worker_heartbeat(info=knows)
    assert await backend.workers_list() == [knows]
    (listed,) = await backend.workers_list()
    assert "mail.send" in listed.tasks and "images.thumbnail" not in listed.tasks
    fewer = replace(knows, tasks=("mail.send",), last_heartbeat=at(5))
    await backend.worker_heartbeat(info=fewer)
    assert await backend.workers_list() == [fewer]


async def test_heartbeat_registers_the_lost_threads_of_a_worker(backend: Backend) -> None:
    await backend.worker_heartbeat(info=info("w1"))
    assert [w.lost_threads for w in await backend.workers_list()] == [0]
    stuck = replace(info("w1"), lost_threads=2, last_heartbeat=at(5))
    await backend.worker_heartbeat(info=stuck)
    assert await backend.workers_list() == [stuck]
