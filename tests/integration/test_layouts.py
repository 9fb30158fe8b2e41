"""The process layouts README, docs/ and deploy/ recommend, as real `taskyard` processes on
every server backend, started in the order that once broke them: the processes that take
part in maintenance first, the scheduler after. Each leader-only duty has its own lease, so
whoever leads maintenance cannot keep the scheduler from firing: every layout fires its
every-second schedule, its workers run the jobs, and each lease is held by a process that
performs that duty.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend
from taskyard.core.job import Job, JobFilter, JobStatus
from taskyard.services.leader import holder_pid
from tests.support.backends import isolated_url
from tests.support.processes import stop_process, taskyard_process
from tests.support.redis import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

APP = "tests.apps.scheduler_app:app"

#: name → processes in start order: (command args, the duties whose leases it may hold).
LAYOUTS: dict[str, list[tuple[list[str], set[str]]]] = {
    # The repro: `taskyard worker` (maintenance on by default), then `taskyard scheduler`.
    "worker-then-scheduler": [
        (["worker", "--queues", "ticks"], {"maintenance"}),
        (["scheduler"], {"scheduler"}),
    ],
    # README "Scale out", worker first.
    "readme-scale-out": [
        (["worker", "--queues", "ticks"], {"maintenance"}),
        (["run", "--only", "api,scheduler,maintenance"], {"scheduler", "maintenance"}),
    ],
    # README "Scale out", in the order the README writes it.
    "readme-scale-out-api-first": [
        (["run", "--only", "api,scheduler,maintenance"], {"scheduler", "maintenance"}),
        (["worker", "--queues", "ticks"], {"maintenance"}),
    ],
    # deploy/ (compose and Kubernetes): api, workers, scheduler+maintenance replicas.
    "deploy-roles": [
        (["run", "--only", "worker"], set()),
        (["run", "--only", "scheduler,maintenance,services"], {"scheduler", "maintenance"}),
        (["run", "--only", "worker"], set()),
        (["run", "--only", "scheduler,maintenance,services"], {"scheduler", "maintenance"}),
        (["run", "--only", "api"], set()),
    ],
}


def now() -> datetime:
    return datetime.now(UTC)


async def jobs_of(backend: Backend) -> list[Job]:
    jobs: list[Job] = []
    cursor = None
    while True:
        page = await backend.jobs_list(filter=JobFilter(task="tick"), limit=500, cursor=cursor)
        jobs.extend(page.jobs)
        cursor = page.next_cursor
        if not cursor:
            return jobs


@contextlib.contextmanager
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The layout's processes; whatever is still running at the end is SIGKILLed."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def leader_pid(backend: Backend, lease: str) -> int | None:
    info = await backend.leader_get(name=lease)
    return holder_pid(info.holder)[1] if info is not None else None


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("kind", ["sqlite", "postgres", "redis", "mysql"])
async def test_layout_fires_schedules_and_runs_jobs(kind: str, layout: str, tmp_path: Path) -> None:
    async with isolated_url(kind, tmp_path) as url:
        backend = backend_from_url(url)
        await backend.open()
        env = {
            "TASKYARD_BACKEND": url,
            "TASKYARD_HTTP__HOST": "127.0.0.1",
            # No dev token written into the repository (the processes run from its root).
            "TASKYARD_HTTP__AUTH_ENABLED": "false",
            "TASKYARD_SCHEDULER__LEADER_TTL": "3",
            "TASKYARD_WORKER__POLL_INTERVAL": "0.2",
        }
        try:
            with processes(tmp_path) as procs:
                duties_of: dict[int, set[str]] = {}
                for args, duties in LAYOUTS[layout]:
                    proc = taskyard_process(
                        ["--app", APP, *args],
                        env={**env, "TASKYARD_HTTP__PORT": str(free_port())},
                        log_path=tmp_path / f"{layout}.log",
                    )
                    procs.append(proc)
                    duties_of[proc.pid] = duties
                    for duty in duties:
                        # The first process of a duty leads it before the next one starts, as a
                        # worker started first leads maintenance.
                        await wait_until(
                            lambda duty=duty: leader_pid(backend, duty), timeout=60,
                            what=f"a {duty} leader",
                        )
                started = now()

                async def enough_fires() -> bool:
                    done = [
                        j for j in await jobs_of(backend)
                        if j.status is JobStatus.COMPLETED and j.payload == {"policy": "all"}
                        and j.created_at >= started
                    ]
                    return len(done) >= 4

                await wait_until(enough_fires, timeout=60, what="schedule fires run by a worker")
                for lease in ("scheduler", "maintenance"):
                    pid = await leader_pid(backend, lease)
                    assert pid in duties_of and lease in duties_of[pid], (
                        f"the {lease} lease is held by pid {pid}, which does not run {lease}"
                    )
                codes = [stop_process(p) for p in procs]
            assert codes == [0] * len(codes), (codes, (tmp_path / f"{layout}.log").read_text()[-3000:])
            jobs = await jobs_of(backend)
        finally:
            await backend.close()
    keys = Counter(j.unique_key for j in jobs)
    assert max(keys.values()) == 1, "a fire made two jobs"
    assert not [j for j in jobs if j.status is JobStatus.FAILED], "a schedule's job failed"
