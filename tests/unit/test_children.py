"""The child-process pool against the memory backend: where a child finds the app, clear
failures when it cannot, children stopped with the worker; option and setting validation."""

from __future__ import annotations

import os
import signal

import pytest

from taskyard import ConfigError, JobStatus, Taskyard
from taskyard.config import load_settings
from taskyard.services.worker import Worker, WorkerConfig
from taskyard.testing import drain
from tests.apps.process_app import build
from tests.support.processes import is_running
from tests.support.waiting import wait_until


async def test_a_programmatic_app_is_found_from_its_handlers_module() -> None:
    app = build("memory://")  # not the module's own `app`: found as the app registering the task
    job = await app.aenqueue("whoami", {})
    threaded = await app.aenqueue("threaded", {})
    await drain(app, concurrency=2)
    done, here = await app.aget_job(job.id), await app.aget_job(threaded.id)
    assert done.status is JobStatus.COMPLETED and done.result != os.getpid()
    assert here.status is JobStatus.COMPLETED and here.result == os.getpid()  # isolation="thread"


async def test_a_handler_no_child_can_import_fails_its_job_with_the_fix() -> None:
    app = Taskyard("memory://")

    @app.task("local", isolation="process")
    def local(payload: dict) -> None:  # pragma: no cover - never runs
        raise AssertionError

    job = await app.aenqueue("local", {})
    await drain(app)
    failed = await app.aget_job(job.id)
    assert failed.status is JobStatus.FAILED and failed.attempt == 1
    assert [e.type for e in failed.errors] == ["ChildStartError"]
    assert "has no Taskyard app registering it" in failed.errors[0].message
    assert "--app MODULE:ATTR" in failed.errors[0].message


async def test_an_app_path_that_does_not_import_fails_the_job_with_the_error() -> None:
    app = build("memory://")
    app.import_path = "tests.apps.no_such_module:app"
    job = await app.aenqueue("whoami", {})
    await drain(app)
    failed = await app.aget_job(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.errors[0].message.startswith(
        "cannot import the app 'tests.apps.no_such_module:app' in a child process: ModuleNotFoundError"
    )


async def test_stopping_the_worker_stops_its_children() -> None:
    app = build("memory://")
    jobs = await app.aenqueue_many([("whoami", {"i": i}) for i in range(4)])
    worker = Worker(app, WorkerConfig(concurrency=2, burst=True, poll_interval=0.05, isolation="process"))
    await worker.start()
    await worker.wait_finished()
    pids = worker.children.pids
    assert pids and all(is_running(p) for p in pids)  # idle children wait for the next job
    await worker.stop()
    assert worker.children.pids == [] and not any(is_running(p) for p in pids)
    results = {(await app.aget_job(j.id)).result for j in jobs}
    assert results <= set(pids)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"isolation": "fork"}, "isolation must be one of 'thread', 'process', not 'fork'"),
        ({"memory_limit": 100}, "memory_limit needs isolation='process'"),
        ({"isolation": "process", "memory_limit": 0}, "memory_limit must be a number of MB > 0"),
        ({"isolation": "process", "memory_limit": "1G"}, "memory_limit must be a number of MB > 0"),
    ],
)
def test_task_options_are_checked(options: dict, message: str) -> None:
    app = Taskyard("memory://")
    with pytest.raises(ValueError, match=message):
        app.task("t", **options)


def test_worker_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"worker\.isolation.*'task' or 'process'"):
        load_settings(None, worker={"isolation": "thread"})
    with pytest.raises(ConfigError, match=r"worker\.max_jobs_per_child"):
        load_settings(None, worker={"max_jobs_per_child": 0})
    with pytest.raises(ConfigError, match=r"worker\.memory_limit"):
        load_settings(None, worker={"memory_limit": -1})
    with pytest.raises(ValueError, match="worker isolation must be 'task' or 'process'"):
        WorkerConfig(isolation="processes")
    worker = load_settings(None, worker={"isolation": "process", "max_memory_per_child": 300}).worker
    assert (worker.isolation, worker.max_jobs_per_child, worker.max_memory_per_child) == ("process", 1000, 300)


async def test_an_idle_child_that_died_is_replaced_without_blaming_the_next_job() -> None:
    app = build("memory://")
    worker = Worker(app, WorkerConfig(concurrency=1, poll_interval=0.05))
    await worker.start()
    try:
        first = await app.await_job((await app.aenqueue("whoami", {})).id, timeout=30)
        os.kill(first.result, signal.SIGKILL)  # e.g. the OOM killer, between two jobs
        await wait_until(lambda: not is_running(first.result), timeout=10, what="the child to die")
        second = await app.await_job((await app.aenqueue("whoami", {})).id, timeout=30)
    finally:
        await worker.stop()
    assert second.status is JobStatus.COMPLETED and second.rescues == 0 and second.errors == ()
    assert second.result != first.result
