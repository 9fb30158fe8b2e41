"""`rescue_decision`: the one rule for a job whose worker was lost, as a pure function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskyard.core.job import DEFAULT_MAX_RESCUES, Job, JobStatus, rescue_decision

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _running(**fields: object) -> Job:
    base: dict[str, object] = dict(
        id="01JOB0000000000000000000000", task="t", queue="default", payload=None,
        status=JobStatus.RUNNING, priority=0, run_at=NOW, attempt=1, max_attempts=1,
        created_at=NOW, worker_id="w-dead", lease_token="tok",
        lease_expires_at=NOW - timedelta(seconds=1),
    )
    base.update(fields)
    return Job(**base)  # type: ignore[arg-type]


def test_a_lost_worker_sends_the_job_back_without_using_an_attempt() -> None:
    job = _running()
    d = rescue_decision(job, NOW)
    assert d.status is JobStatus.PENDING and d.attempt == 0 and d.rescues == 1
    assert d.error.type == "LeaseExpired" and d.error.attempt == 1 and d.error.at == NOW
    assert "w-dead" in d.error.message and "1 of 3" in d.error.message
    after = d.apply(job, NOW)
    assert after.status is JobStatus.PENDING and after.errors == (d.error,)
    assert after.lease_token is None and after.lease_expires_at is None and after.worker_id is None
    assert after.finished_at is None


def test_past_max_rescues_the_job_fails_and_says_why() -> None:
    job = _running(rescues=DEFAULT_MAX_RESCUES, attempt=2, max_attempts=5)
    d = rescue_decision(job, NOW)
    assert d.status is JobStatus.FAILED and d.attempt == 2 and d.rescues == DEFAULT_MAX_RESCUES + 1
    assert d.error.message.startswith("its worker was lost 4 times (max_rescues=3)")
    assert "kills its worker" in d.error.message
    after = d.apply(job, NOW)
    assert after.status is JobStatus.FAILED and after.finished_at == NOW
    assert after.worker_id == "w-dead"  # who ran it last stays visible


def test_the_decision_ignores_the_retry_budget() -> None:
    assert rescue_decision(_running(attempt=5, max_attempts=5), NOW).status is JobStatus.PENDING
    assert rescue_decision(_running(max_rescues=0), NOW).status is JobStatus.FAILED


def test_a_reason_names_how_the_worker_lost_the_job() -> None:
    reason = "the child process running it died (signal 11, SIGSEGV)"
    d = rescue_decision(_running(), NOW, reason)
    assert d.status is JobStatus.PENDING and d.rescues == 1
    assert d.error.type == "WorkerLost"
    assert d.error.message == f"{reason}; rescued (1 of 3), the attempt will run again"
    last = rescue_decision(_running(rescues=DEFAULT_MAX_RESCUES), NOW, reason)
    assert last.status is JobStatus.FAILED and last.error.type == "WorkerLost"
    assert last.error.message.endswith(f"last time {reason}")
