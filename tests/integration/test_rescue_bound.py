"""How soon a dead worker's job runs again, measured with real `taskyard worker` processes.

The bound (docs/architecture.md): a worker renews its leases every h = min(lease/3,
heartbeat_interval), so the lease of a job whose worker dies expires between lease - h and
lease after the death; a rescuer (every worker runs one, no leader needed) takes it within
one rescue interval after that; a live worker claims it at once (wake-up) or at its next
poll. Hence: kill → next start in [lease - h, lease + rescue_interval + slack].
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from taskyard import JobStatus
from tests.apps.worker_app import build
from tests.support.backends import isolated_url
from tests.support.processes import read_runlog, stop_process, taskyard_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

LEASE = 3.0
HEARTBEAT = min(LEASE / 3, 5.0)
RESCUE_INTERVAL = 0.5
POLL = 0.1
#: Beyond the bound: the claim after a lost wake-up (one poll), the rescue and claim queries,
#: a thread to start the handler, and two busy cores shared with other work.
SLACK = 1.5
#: A leader lease far longer than the test: if the killed worker led maintenance, leadership
#: cannot move in time, so the rescue must come from the surviving worker's own rescuer.
LEADER_TTL = 60.0


def _starts(path: Path) -> list[tuple[str, int, float]]:
    if not path.exists():
        return []
    return [(j, int(p), float(t)) for j, p, t in (line.split() for line in path.read_text().splitlines())]


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "redis", "mysql"])
async def test_a_default_task_runs_again_within_lease_plus_rescue_interval(
    kind: str, tmp_path: Path
) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        await app.open()
        runlog, starts = tmp_path / "runs.log", tmp_path / "starts.log"
        env = {
            "TASKYARD_BACKEND": url,
            "TASKYARD_TEST_RUNLOG": str(runlog),
            "TASKYARD_TEST_STARTS": str(starts),
            "TASKYARD_WORKER__LEASE": str(LEASE),
        }
        args = [
            "--app", "tests.apps.worker_app:app", "worker", "--concurrency", "2",
            "--poll-interval", str(POLL), "--rescue-interval", str(RESCUE_INTERVAL),
            "--leader-ttl", str(LEADER_TTL),
        ]

        def worker():  # type: ignore[no-untyped-def]
            return taskyard_process(args, env=env, log_path=tmp_path / "workers.log")

        victim = worker()
        procs = [victim]
        try:
            # The victim leads maintenance and runs the job before the survivor exists.
            leader = await wait_until(
                lambda: app.backend.leader_get(name="maintenance"), timeout=60, what="a leader"
            )
            assert f":{victim.pid}:" in leader.holder
            job = await app.aenqueue("hang-once", {})
            assert job.max_attempts == 1 and job.max_rescues == 3
            await wait_until(lambda: _starts(starts), timeout=60, what="the first run")
            survivor = worker()
            procs.append(survivor)
            await wait_until(
                lambda: _count_workers(app, 2), timeout=60, what="both workers to register"
            )
            killed_at = time.time()
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            runs = await wait_until(
                lambda: [s for s in _starts(starts) if s[1] == survivor.pid],
                timeout=LEASE + RESCUE_INTERVAL + 30, interval=0.02, what="the job to start again",
            )
            delay = runs[0][2] - killed_at
            still = await app.backend.leader_get(name="maintenance")
            done = await app.await_job(job.id, timeout=60)
        finally:
            codes = [stop_process(p) if p.poll() is None else None for p in procs]
        assert codes.count(0) == 1
        print(f"\n{kind}: kill → next start {delay:.2f}s (lease {LEASE}, rescue {RESCUE_INTERVAL})")
        # SQLite has no clock: a rescuer counts a whole lease from when it first saw the final
        # lease, so one more rescue interval (docs/sqlite.md).
        ticks = 2 if kind == "sqlite" else 1
        assert LEASE - HEARTBEAT - 0.25 <= delay <= LEASE + ticks * RESCUE_INTERVAL + SLACK, delay
        # Leadership had not moved: the survivor's leaderless rescuer did the rescue.
        assert still is not None and still.holder == leader.holder
        assert done.status is JobStatus.COMPLETED and done.result == "finished"
        assert (done.attempt, done.rescues) == (1, 1)
        assert [e.type for e in done.errors] == ["LeaseExpired"]
        assert [(r[1], r[3]) for r in read_runlog(runlog) if r[0] == job.id] == [
            (1, "start"), (1, "start"), (1, "done"),
        ]
        await app.aclose()


async def _count_workers(app, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await app.backend.workers_list()) == n
