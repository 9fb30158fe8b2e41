"""Two apps on one SQLite file, each with its own `taskyard worker` process (issue 9: a new
app started beside another's, or two versions of one app in a rolling deploy): each worker
runs only its own app's jobs, the other's wait untouched and are reported unclaimable until
a worker that knows them runs; no job fails for an unknown task.
"""

from __future__ import annotations

from pathlib import Path

from taskyard import JobStatus
from taskyard.core.coverage import TaskCoverage, task_coverage
from tests.apps.two_apps import build_images, build_mail
from tests.support.processes import read_runlog, stop_process, taskyard_process
from tests.support.waiting import wait_until

FAST_WORKER = ["--poll-interval", "0.1", "--concurrency", "4"]


def _worker(app: str, url: str, runlog: Path, tmp_path: Path):
    return taskyard_process(
        ["--app", f"tests.apps.two_apps:{app}", "worker", *FAST_WORKER],
        env={"TASKYARD_BACKEND": url, "TASKYARD_TEST_RUNLOG": str(runlog)},
        log_path=tmp_path / f"{app}.log",
    )


async def test_two_apps_on_one_sqlite_file_each_run_only_their_own_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'taskyard.db'}"
    runlog = tmp_path / "runs.log"
    images, mail = build_images(url), build_mail(url)
    # Interleaved, with the other app's jobs ahead in priority: they must not hold ours back.
    first = []
    for i in range(20):
        first.append(await mail.aenqueue("mail.send", {"i": i}, priority=5))
        first.append(await images.aenqueue("images.thumbnail", {"i": i}))
    mail_jobs = [j for j in first if j.task == "mail.send"]
    image_jobs = [j for j in first if j.task == "images.thumbnail"]

    images_worker = _worker("images", url, runlog, tmp_path)
    mail_worker = None
    try:
        async def images_done() -> bool:
            jobs = [await images.aget_job(j.id) for j in image_jobs]
            return all(j is not None and j.status is JobStatus.COMPLETED for j in jobs)

        await wait_until(images_done, timeout=60, what="the images worker to run its jobs")
        # The mail jobs are untouched: pending, no attempt used, no field changed.
        for job in mail_jobs:
            assert await mail.aget_job(job.id) == job
        backend = images.backend
        now = images.clock.now()

        async def coverage() -> dict[str, TaskCoverage]:
            workers = await backend.workers_list()
            found = task_coverage(await backend.task_counts(now=now), workers, now=now)
            return {c.task: c for c in found}

        seen = await wait_until(coverage, timeout=30, what="the images worker to register")
        assert seen["mail.send"].is_unclaimable and seen["mail.send"].pending == 20
        assert not seen["images.thumbnail"].is_unclaimable

        mail_worker = _worker("mail", url, runlog, tmp_path)

        async def all_done() -> bool:
            counts = (await images.acounts()).get("default", {})
            return counts.get("completed", 0) == len(first) + 20

        # More of both while both run.
        more = [await mail.aenqueue("mail.send", {"i": i}) for i in range(10)]
        more += [await images.aenqueue("images.thumbnail", {"i": i}) for i in range(10)]
        await wait_until(all_done, timeout=60, what="both workers to drain their jobs")
    finally:
        assert stop_process(images_worker) == 0
        if mail_worker is not None:
            assert stop_process(mail_worker) == 0

    counts = (await images.acounts())["default"]
    assert counts.get("failed", 0) == 0 and counts.get("pending", 0) == 0
    runs = read_runlog(runlog)
    by_job = {job_id: (attempt, pid, name) for job_id, attempt, pid, name in runs}
    assert len(runs) == len(by_job) == len(first) + len(more)  # each job ran exactly once
    for job in first + more:
        attempt, pid, name = by_job[job.id]
        expected = ("images", images_worker.pid) if job.task == "images.thumbnail" else ("mail", mail_worker.pid)
        assert (name, pid) == expected and attempt == 1
        stored = await images.aget_job(job.id)
        assert stored is not None and stored.errors == () and stored.attempt == 1
    await images.aclose()
    await mail.aclose()
