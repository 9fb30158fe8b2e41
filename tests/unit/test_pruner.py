"""Retention per queue: `app.queue(..., retention=...)` and `[maintenance.retention.queues]`
replace the global rule of a status in their queue only; the `Pruner` built by the task
server carries both out."""

from __future__ import annotations

import pytest

from taskyard import Taskyard
from taskyard.backends.memory import MemoryBackend
from taskyard.config import load_settings
from taskyard.core.job import AttemptError, JobFilter, JobStatus
from taskyard.core.retention import PruneStep, Retention, parse_retention, prune_steps
from taskyard.core.settle import Settle
from taskyard.errors import ConfigError
from taskyard.server import TaskServer
from taskyard.services.maintenance import Pruner

S = JobStatus


async def _finish(app: Taskyard, backend: MemoryBackend, queue: str, status: JobStatus, n: int) -> None:
    for _ in range(n):
        job = await app.aenqueue("t", {}, queue=queue)
        (claimed,) = await backend.job_claim(queues=[queue], limit=1, worker_id="w", lease=30)
        assert claimed.id == job.id and claimed.lease_token is not None
        if status is S.COMPLETED:
            outcome = Settle.completed(job.id, claimed.lease_token)
        else:
            error = AttemptError(attempt=1, type="E", message="x", traceback="", at=claimed.created_at)
            outcome = Settle.failed(job.id, claimed.lease_token, error, None)
        (answer,) = await backend.jobs_settle(outcomes=[outcome])
        assert answer.owned


async def _count(backend: MemoryBackend, queue: str, status: JobStatus) -> int:
    page = await backend.jobs_list(filter=JobFilter(queue=queue, status=status), limit=1000)
    return len(page.jobs)


def test_a_queue_rule_replaces_the_global_rule_of_its_status_only() -> None:
    steps = prune_steps(
        parse_retention({"completed": {"keep_last": 100}, "failed": {"max_age": 60}}),
        {"sync": parse_retention({"completed": {"keep_last": 10}}), "raw": {S.FAILED: Retention()}},
    )
    assert steps == [
        PruneStep(status=S.COMPLETED, rule=Retention(keep_last=100), exclude_queues=frozenset({"sync"})),
        PruneStep(status=S.COMPLETED, rule=Retention(keep_last=10), queue="sync"),
        PruneStep(status=S.FAILED, rule=Retention(max_age=60), exclude_queues=frozenset({"raw"})),
    ]  # raw's failed jobs are kept forever: a rule without limits


@pytest.mark.parametrize(
    ("rules", "message"),
    [({"running": {"keep_last": 1}}, "finished statuses only"), ({"failed": {"keep": 1}}, "keep_last")],
)
def test_bad_retention_in_code_names_the_problem(rules: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Taskyard("memory://").queue("sync", retention=rules)


def test_queue_retention_settings_are_validated() -> None:
    settings = load_settings(maintenance={"retention": {"queues": {"sync": {"failed": {"keep_last": 5}}}}})
    assert settings.maintenance.retention.queues["sync"].rules()["failed"].keep_last == 5
    assert settings.maintenance.retention.completed.keep_last == 1000  # the globals stay
    with pytest.raises(ConfigError, match=r"maintenance\.retention\.queues\.sync\.running"):
        load_settings(maintenance={"retention": {"queues": {"sync": {"running": {"keep_last": 1}}}}})


async def test_the_servers_pruner_keeps_per_queue_counts_from_code_and_settings() -> None:
    backend = MemoryBackend()
    app = Taskyard(backend)

    @app.task("t")
    async def t(payload: dict) -> None: ...

    app.queue("sync", retention={"completed": {"keep_last": 10}, "failed": {"keep_last": 5}})
    settings = load_settings(
        backend="memory://", http={"enabled": False},
        maintenance={"retention": {
            "completed": {"keep_last": 3},
            "queues": {"sync": {"failed": {"keep_last": 2}}},  # the setting wins over the code
        }},
    )
    server = TaskServer(app, settings, only="maintenance")
    server.build()
    pruner = server.manager.get("pruner").service
    assert isinstance(pruner, Pruner)
    await _finish(app, backend, "sync", S.COMPLETED, 12)
    await _finish(app, backend, "sync", S.FAILED, 4)
    await _finish(app, backend, "default", S.COMPLETED, 6)
    await _finish(app, backend, "default", S.FAILED, 4)
    await pruner.execute()
    assert await _count(backend, "sync", S.COMPLETED) == 10
    assert await _count(backend, "sync", S.FAILED) == 2
    assert await _count(backend, "default", S.COMPLETED) == 3
    assert await _count(backend, "default", S.FAILED) == 4  # global failed: 5000 and 7 days
