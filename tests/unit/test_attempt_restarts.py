"""The job page's mark of a manual retry: attempt numbers that start again, told apart from a
rescue (which runs the same attempt number again)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskyard.core.job import AttemptError, Job, JobStatus
from taskyard.http.dashboard.pages import attempt_restarts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _error(attempt: int, minute: int, kind: str = "RuntimeError") -> AttemptError:
    return AttemptError(attempt=attempt, type=kind, message="x", traceback=None, at=T0 + timedelta(minutes=minute))


def _job(status: JobStatus, attempt: int, errors: list[AttemptError], started: int | None) -> Job:
    return Job(
        id="01J0000000000000000000000A", task="t", queue="q", payload={}, status=status, priority=0,
        attempt=attempt, max_attempts=3, errors=tuple(errors), created_at=T0, run_at=T0,
        started_at=None if started is None else T0 + timedelta(minutes=started),
    )


def test_retries_and_rescues_are_not_restarts() -> None:
    errors = [_error(1, 1), _error(2, 2, "LeaseExpired"), _error(2, 3), _error(3, 4)]
    assert attempt_restarts(_job(JobStatus.FAILED, 3, errors, started=4)) == [False] * 4
    # Waiting for its backoff after a failed attempt; pending again after a rescue.
    assert attempt_restarts(_job(JobStatus.SCHEDULED, 1, errors[:1], started=1)) == [False]
    assert attempt_restarts(_job(JobStatus.PENDING, 1, errors[:2], started=2)) == [False, False]


def test_a_manual_retry_is_marked_after_the_error_it_followed() -> None:
    failed_out = [_error(1, 1), _error(2, 2), _error(3, 3)]
    assert attempt_restarts(_job(JobStatus.PENDING, 0, failed_out, started=3)) == [False, False, True]
    again = [*failed_out, _error(1, 5)]
    assert attempt_restarts(_job(JobStatus.RUNNING, 2, again, started=6)) == [False, False, True, False]
    # One attempt allowed: failed at 1, retried, running attempt 1 again.
    single = [_error(1, 1)]
    assert attempt_restarts(_job(JobStatus.RUNNING, 1, single, started=2)) == [True]
    assert attempt_restarts(_job(JobStatus.FAILED, 1, [*single, _error(1, 3)], started=2)) == [True, False]
