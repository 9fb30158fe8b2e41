"""The job rules every backend carries out, as pure functions of `core/` and error
constructors of `errors.py`: cancel, manual retry, which statuses prune, the rate window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskyard.core.job import (
    FINISHED_STATUSES,
    AttemptError,
    Job,
    JobStatus,
    Progress,
    cancelled_job,
    check_prunable,
    retried_job,
)
from taskyard.core.queue import rate_window_start
from taskyard.errors import InvalidTransitionError, LeaseLost

S = JobStatus
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ERROR = AttemptError(attempt=2, type="ValueError", message="boom", traceback=None, at=NOW)


def _job(status: JobStatus, **fields: object) -> Job:
    base: dict[str, object] = dict(
        id="01JOB0000000000000000000000", task="t", queue="default", payload={"n": 1},
        status=status, priority=3, run_at=NOW - timedelta(hours=1), attempt=2, max_attempts=2,
        created_at=NOW - timedelta(hours=2),
    )
    base.update(fields)
    return Job(**base)  # type: ignore[arg-type]


def _last_run(status: JobStatus) -> Job:
    """A finished job carrying every trace a run leaves behind."""
    return _job(
        status, started_at=NOW - timedelta(minutes=5), finished_at=NOW - timedelta(minutes=1),
        result={"cancelled": "r"}, errors=(ERROR,), progress=Progress(50.0, "half"),
        worker_id="w1", lease_token="tok", lease_expires_at=NOW, cancel_requested=True,
        rescues=2, unique_key="k", tags=("a",), timeout=5.0, max_rescues=4,
    )


# -- cancel ----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [S.SCHEDULED, S.PENDING])
def test_cancel_of_a_waiting_job_finishes_it_now(status: JobStatus) -> None:
    job = _job(status)
    assert cancelled_job(job, NOW) == job.replace(status=S.CANCELLED, finished_at=NOW)


def test_cancel_of_a_running_job_only_asks_its_worker() -> None:
    job = _job(S.RUNNING, worker_id="w1", lease_token="tok")
    assert cancelled_job(job, NOW) == job.replace(cancel_requested=True)


def test_cancel_of_a_cancelled_job_returns_it_unchanged() -> None:
    job = _job(S.CANCELLED, finished_at=NOW - timedelta(minutes=1))
    assert cancelled_job(job, NOW) is job


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED])
def test_cancel_of_a_finished_job_is_refused_with_its_status(status: JobStatus) -> None:
    with pytest.raises(InvalidTransitionError) as info:
        cancelled_job(_job(status), NOW)
    assert str(info.value) == f"job 01JOB0000000000000000000000 is {status.value}; it cannot be cancelled"


# -- manual retry ----------------------------------------------------------------------------
@pytest.mark.parametrize("status", [S.FAILED, S.CANCELLED])
def test_manual_retry_resets_the_run_and_keeps_the_job_and_its_errors(status: JobStatus) -> None:
    job = _last_run(status)
    after = retried_job(job, NOW)
    assert after.status is S.PENDING and after.run_at == NOW
    assert after.attempt == 0 and after.rescues == 0
    assert after.finished_at is None and after.result is None and after.progress is None
    assert after.worker_id is None and after.lease_token is None and after.lease_expires_at is None
    assert after.cancel_requested is False
    # What the job is, and its history, stay.
    kept = ("id", "task", "queue", "payload", "priority", "max_attempts", "created_at",
            "started_at", "errors", "unique_key", "tags", "timeout", "max_rescues")
    assert {f: getattr(after, f) for f in kept} == {f: getattr(job, f) for f in kept}


@pytest.mark.parametrize("status", [S.SCHEDULED, S.PENDING, S.RUNNING, S.COMPLETED])
def test_manual_retry_of_any_other_status_is_refused(status: JobStatus) -> None:
    with pytest.raises(InvalidTransitionError) as info:
        retried_job(_job(status), NOW)
    assert str(info.value) == (
        f"job 01JOB0000000000000000000000 is {status.value}; "
        "only failed or cancelled jobs can be retried"
    )


def test_unique_key_refusal_names_the_holder_when_known() -> None:
    named = InvalidTransitionError.unique_key_held("J1", "k", "J2")
    assert str(named) == "job J1 cannot be retried: job J2 with unique key 'k' is active"
    unnamed = InvalidTransitionError.unique_key_held("J1", "k")
    assert str(unnamed) == "job J1 cannot be retried: another active job holds its unique key 'k'"


def test_lease_lost_names_the_job() -> None:
    error = LeaseLost.of_job("J1")
    assert isinstance(error, LeaseLost) and str(error) == "lease on job 'J1' is no longer held"


# -- prune -----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", sorted(FINISHED_STATUSES))
def test_finished_statuses_may_be_pruned(status: JobStatus) -> None:
    check_prunable(status)


@pytest.mark.parametrize("status", [S.SCHEDULED, S.PENDING, S.RUNNING])
def test_active_statuses_may_not_be_pruned(status: JobStatus) -> None:
    with pytest.raises(ValueError, match=f"only finished jobs can be pruned, not '{status.value}'"):
        check_prunable(status)


# -- rate window -----------------------------------------------------------------------------
def test_rate_windows_start_at_multiples_of_the_period() -> None:
    base = NOW.timestamp()  # a whole minute
    assert rate_window_start(base, 60.0) == base
    assert rate_window_start(base + 59.9, 60.0) == base
    assert rate_window_start(base + 60.0, 60.0) == base + 60.0
    assert rate_window_start(base + 2.5, 0.5) == base + 2.5
    assert rate_window_start(base + 2.7, 0.5) == pytest.approx(base + 2.5)
