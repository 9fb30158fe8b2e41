"""Workers whose clocks are minutes off (Debian `faketime` on real `taskyard worker`
processes) never rescue a live job: leases are judged by the store's clock — PostgreSQL's
`now()`, Redis's `TIME` — and on SQLite, which has none, by what a rescuer saw stay
unrenewed for a whole lease on its own monotonic clock.

The job's own worker runs 2 minutes behind (its renewals would look long expired to a
wall-clock rule) and an idle worker 2 minutes ahead (every lease would look expired to it);
a third runs on true time. Before the fix the job started again and again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard import JobStatus
from tests.apps.worker_app import build
from tests.support.backends import isolated_url
from tests.support.processes import (
    LIBFAKETIME,
    read_runlog,
    skewed_env,
    stop_process,
    taskyard_process,
)
from tests.support.servers import unavailable
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_libfaketime() -> None:
    if LIBFAKETIME is None:  # `make test` installs Debian's faketime
        unavailable("libfaketime", "Debian's faketime is not installed")

LEASE = "3"
JOB_SECONDS = 8.0


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "redis", "mysql"])
async def test_skewed_workers_never_rescue_a_live_job(kind: str, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        app = build(url)
        runlog, log = tmp_path / "runs.log", tmp_path / "workers.log"
        env = {"TASKYARD_BACKEND": url, "TASKYARD_TEST_RUNLOG": str(runlog)}
        args = [
            "--app", "tests.apps.worker_app:app", "worker", "--lease", LEASE, "--concurrency", "2",
            "--poll-interval", "0.1", "--rescue-interval", "0.3", "--leader-ttl", "2",
        ]

        def worker(offset: str | None):  # type: ignore[no-untyped-def]
            skew = {} if offset is None else skewed_env(offset)
            return taskyard_process(args, env={**env, **skew}, log_path=log)

        behind = worker("-2m")
        procs = [behind]
        try:
            job = await app.aenqueue("slow", {"seconds": JOB_SECONDS})
            await wait_until(lambda: read_runlog(runlog), timeout=60, what="the job to start")
            procs += [worker("+2m"), worker(None)]
            done = await app.await_job(job.id, timeout=60)
        finally:
            codes = [stop_process(p) for p in procs]
        assert codes == [0, 0, 0]
        starts = [(r[1], r[2], r[3]) for r in read_runlog(runlog) if r[0] == job.id]
        assert starts == [(1, behind.pid, "start"), (1, behind.pid, "done")], starts
        assert done.status is JobStatus.COMPLETED and done.rescues == 0 and done.errors == ()
        assert log.read_text().count("task server started") == 3  # all three were up
        await app.aclose()

