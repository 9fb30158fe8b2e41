"""Retention per queue in a real task server: `TASKYARD_MAINTENANCE__RETENTION__QUEUES__...`
keeps its own count of the sync queue's completed jobs, the global rule the others'."""

from __future__ import annotations

from pathlib import Path

from taskyard import JobStatus, Taskyard
from tests.support.processes import stop_process, taskyard_process
from tests.support.waiting import wait_until


async def test_a_task_server_prunes_one_queue_by_its_own_rule(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'retention.db'}"
    app = Taskyard(url)

    @app.task("tick", queue="ticks")  # the task of the app the server runs
    async def tick(payload: dict) -> None: ...

    await app.aenqueue_many([{"task": "tick", "queue": "sync"} for _ in range(6)])
    await app.aenqueue_many([("tick", {}) for _ in range(4)])
    proc = taskyard_process(
        ["--app", "tests.apps.scheduler_app:app", "run", "--only", "worker,maintenance"],
        env={
            "TASKYARD_BACKEND": url,
            "TASKYARD_HTTP__ENABLED": "false",
            "TASKYARD_MAINTENANCE__PRUNE_INTERVAL": "0.2",
            "TASKYARD_MAINTENANCE__RETENTION__COMPLETED__KEEP_LAST": "3",
            "TASKYARD_MAINTENANCE__RETENTION__QUEUES__SYNC__COMPLETED__KEEP_LAST": "2",
        },
        log_path=tmp_path / "server.log",
    )
    try:
        async def settled() -> dict[str, dict[str, int]] | None:
            counts = await app.acounts()
            total = sum(sum(per.values()) for per in counts.values())
            done = sum(per[JobStatus.COMPLETED.value] for per in counts.values())
            return counts if total == done == 5 else None

        counts = await wait_until(settled, timeout=60, what="10 jobs run and pruned to 2 + 3")
        assert counts["sync"]["completed"] == 2 and counts["ticks"]["completed"] == 3
    finally:
        assert stop_process(proc) == 0, (tmp_path / "server.log").read_text()
        await app.aclose()
