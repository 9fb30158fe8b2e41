"""The checker over hand-made histories: a clean run passes, and each invariant has a
history that breaks it and is caught."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.checker import CheckInput, Fault, StoredJob, check
from chaos.history import Event, parse_lines, read_file

from taskyard import Retry

POLICIES = {"t": Retry(attempts=3, backoff=[1.0]), "once": Retry()}
T0 = 1_800_000_000.0


def ev(kind: str, t: float, pid: int = 10, **data: Any) -> Event:
    return Event(kind=kind, t=T0 + t, pid=pid, process=f"p{pid}", data=data)


def ack(t: float, *ids: str) -> list[Event]:
    return [ev("invoke", t - 0.01, 1, ids=list(ids)),
            ev("ack", t, 1, ids=list(ids), jobs=[{"id": i, "task": "t", "unique_key": None} for i in ids])]


def run(job: str, attempt: int, t: float, pid: int = 10, end: float | None = 0.1, ok: bool = True,
        error: str | None = None, token: str | None = None, key: str | None = None) -> list[Event]:
    base = {"job": job, "task": "t", "attempt": attempt, "token": token or f"{job}-{attempt}", "unique_key": key}
    events = [ev("start", t, pid, **base)]
    if end is not None:
        events.append(ev("end", t + end, pid, ok=ok, **({"error": error} if error else {}), **base))
    return events


def job(id: str, status: str = "completed", attempt: int = 1, token: str | None = None, task: str = "t",
        errors: tuple[str, ...] = (), key: str | None = None, run_at: float = 0.0) -> StoredJob:
    result = {"attempt": attempt, "token": token or f"{id}-{attempt}"} if status == "completed" else None
    return StoredJob(id=id, task=task, status=status, attempt=attempt, max_attempts=3, run_at=T0 + run_at,
                     created_at=T0 + run_at, unique_key=key, result=result, error_types=errors)


def invariants(data: CheckInput) -> set[str]:
    return {v.invariant for v in check(data).violations}


def test_a_clean_history_passes() -> None:
    events = [*ack(0, "a", "b"), *run("a", 1, 1), *run("b", 1, 1, ok=False, error="RuntimeError"),
              *run("b", 2, 2.2)]
    report = check(CheckInput(events, [job("a"), job("b", attempt=2)], policies=POLICIES))
    assert report.ok, report.violations
    assert (report.acknowledged, report.executions, report.duplicates) == (2, 3, [])


def test_an_acknowledged_job_missing_from_the_store_is_lost() -> None:
    report = check(CheckInput(ack(0, "a", "b"), [job("a")], policies=POLICIES))
    assert [(v.invariant, v.job) for v in report.violations] == [("lost", "b")]
    assert report.lost == 1


def test_a_job_still_active_at_the_end_is_not_terminal() -> None:
    report = check(CheckInput(ack(0, "a"), [job("a", status="running")], policies=POLICIES))
    assert {v.invariant for v in report.violations} == {"not-terminal"}
    assert (report.lost, report.stuck) == (0, 1)


def test_a_job_failed_by_a_lease_loss_alone_is_dropped() -> None:
    events = [*ack(0, "a"), *run("a", 1, 1, end=None)]
    faults = [Fault("kill", T0 + 1.05, 10)]
    stored = [job("a", status="failed", task="once", errors=("LeaseExpired",))]
    report = check(CheckInput(events, stored, faults=faults, policies=POLICIES))
    assert {v.invariant for v in report.violations} == {"dropped"}


def test_a_job_failed_by_its_handler_is_not_dropped() -> None:
    events = [*ack(0, "a"), *run("a", 1, 1, ok=False, error="RuntimeError")]
    stored = [job("a", status="failed", task="once", errors=("RuntimeError",))]
    assert check(CheckInput(events, stored, policies=POLICIES)).ok


def test_an_unknown_task_failure_without_a_run_is_dropped() -> None:
    stored = [job("a", status="failed", errors=("LookupError",))]
    assert invariants(CheckInput(ack(0, "a"), stored, policies=POLICIES)) == {"dropped"}


def test_a_killed_holder_explains_a_duplicate() -> None:
    events = [*ack(0, "a"), *run("a", 1, 1, pid=10, end=None), *run("a", 2, 8, pid=11)]
    faults = [Fault("kill", T0 + 1.5, 10)]
    report = check(CheckInput(events, [job("a", attempt=2)], faults=faults, policies=POLICIES))
    assert report.ok, report.violations
    assert [(d.cause, d.attempt) for d in report.duplicates] == [("holder SIGKILLed", 2)]


def test_a_duplicate_without_a_fault_is_unexplained() -> None:
    events = [*ack(0, "a"), *run("a", 1, 1, pid=10, end=None), *run("a", 2, 8, pid=11)]
    assert "unexplained-duplicate" in invariants(CheckInput(events, [job("a", attempt=2)], policies=POLICIES))


def test_a_skewed_clock_does_not_excuse_a_duplicate() -> None:
    events = [*ack(0, "a"), *run("a", 1, 1, pid=10, end=2.0), *run("a", 2, 1.5, pid=11)]
    faults = [Fault("skew", T0, 10, detail="-120s")]
    found = invariants(CheckInput(events, [job("a", attempt=2)], faults=faults, policies=POLICIES))
    assert {"unexplained-duplicate", "concurrent-execution"} <= found


def test_a_completed_job_that_starts_again_is_caught() -> None:
    events = [*ack(0, "a"), *run("a", 1, 1, pid=10), *run("a", 2, 3, pid=11)]
    faults = [Fault("kill", T0 + 2, 10)]
    stored = [job("a", attempt=1)]  # the store kept attempt 1's completion
    assert "completed-ran-again" in invariants(CheckInput(events, stored, faults=faults, policies=POLICIES))


def test_the_same_attempt_started_twice_without_a_lease_loss_is_caught() -> None:
    events = [*ack(0, "a"), *run("a", 1, 1, pid=10, end=None), *run("a", 1, 9, pid=11)]
    assert "attempt-twice" in invariants(CheckInput(events, [job("a")], policies=POLICIES))


def test_two_overlapping_runs_on_healthy_processes_are_concurrent() -> None:
    events = [*ack(0, "a"), *run("a", 1, 1, pid=10, end=5), *run("a", 2, 2, pid=11)]
    faults = [Fault("kill", T0 + 100, 10)]
    assert "concurrent-execution" in invariants(CheckInput(events, [job("a", attempt=2)], faults=faults, policies=POLICIES))


def test_more_attempts_than_the_policy_allows_are_caught() -> None:
    events = [*ack(0, "a")]
    for attempt in (1, 2, 3, 4):
        events += run("a", attempt, attempt * 2.0, ok=attempt == 4, error=None if attempt == 4 else "RuntimeError")
    assert "attempts" in invariants(CheckInput(events, [job("a", attempt=4)], policies=POLICIES))


def test_a_retry_before_its_backoff_is_caught() -> None:
    events = [*ack(0, "a"), *run("a", 1, 1, ok=False, error="RuntimeError"), *run("a", 2, 1.5)]
    assert invariants(CheckInput(events, [job("a", attempt=2)], policies=POLICIES)) == {"backoff"}


def _fire(name: str, second: int, id: str | None = None) -> StoredJob:
    from datetime import UTC, datetime

    iso = datetime.fromtimestamp(T0 + second, UTC).isoformat()
    return job(id or f"{name}-{second}", task="tick", key=f"schedule:{name}:{iso}", run_at=second)


def test_every_fire_second_has_one_job_under_all() -> None:
    jobs = [_fire("s-all", s) for s in range(10, 21)]
    assert check(CheckInput([], jobs, schedules={"s-all": "all"}, window=(T0 + 10, T0 + 20))).ok


def test_a_missing_fire_under_all_is_caught() -> None:
    jobs = [_fire("s-all", s) for s in range(10, 21) if s != 15]
    report = check(CheckInput([], jobs, schedules={"s-all": "all"}, window=(T0 + 10, T0 + 20)))
    assert {v.invariant for v in report.violations} == {"fire-missing"}
    assert report.fires_missing == {"s-all": 1}


def test_a_doubled_fire_is_caught_under_any_policy() -> None:
    jobs = [_fire("s-skip", s) for s in range(10, 21)] + [_fire("s-skip", 12, id="again")]
    data = CheckInput([], jobs, schedules={"s-skip": "skip"}, window=(T0 + 10, T0 + 20))
    assert invariants(data) == {"fire-doubled"}


def test_skip_may_miss_fires_only_inside_a_disruption() -> None:
    jobs = [_fire("s-skip", s) for s in range(10, 21) if s not in (14, 15)]
    window = (T0 + 10, T0 + 20)
    inside = CheckInput([], jobs, schedules={"s-skip": "skip"}, window=window, disruptions=[(T0 + 14, T0 + 15)])
    assert check(inside).ok
    assert invariants(CheckInput([], jobs, schedules={"s-skip": "skip"}, window=window)) == {"fire-missing"}


def test_two_live_jobs_of_one_unique_key_are_caught() -> None:
    stored = [job("a", status="pending", key="u:1"), job("b", status="pending", key="u:1")]
    assert "unique" in invariants(CheckInput([], stored, policies=POLICIES))


def test_two_jobs_of_one_unique_key_running_at_once_are_caught() -> None:
    events = [*ack(0, "a", "b"), *run("a", 1, 1, pid=10, end=3, key="u:1"), *run("b", 1, 2, pid=11, key="u:1")]
    stored = [job("a", key="u:1"), job("b", key="u:1")]
    assert invariants(CheckInput(events, stored, policies=POLICIES)) == {"unique"}


def test_a_fenced_workers_late_write_is_caught() -> None:
    # Attempt 1's holder was paused, attempt 2 ran elsewhere, and the store kept attempt 1's result.
    events = [*ack(0, "a"), *run("a", 1, 1, pid=10, end=12), *run("a", 2, 8, pid=11)]
    faults = [Fault("stop", T0 + 1.5, 10, until=T0 + 12.5)]
    stored = [StoredJob("a", "t", "completed", 2, 3, T0, T0, result={"attempt": 1, "token": "a-1"})]
    assert "stale-write" in invariants(CheckInput(events, stored, faults=faults, policies=POLICIES))


def test_executions_of_jobs_nobody_enqueued_are_unexpected() -> None:
    assert "unexpected" in invariants(CheckInput(run("ghost", 1, 1), [], policies=POLICIES))


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "worker-1-10.jsonl"
    path.write_text('{"kind":"start","t":1.0,"pid":10,"job":"a","attempt":1}\n{"kind":"end","t":2.0,"pi')
    assert [e.kind for e in read_file(path)] == ["start"]
    assert [e.true_time for e in parse_lines(['{"kind":"x","t":130.0,"skew":120}'])] == [10.0]


def test_a_batch_cut_in_the_middle_must_be_all_or_nothing() -> None:
    events = [ev("invoke", 0, 1, ids=["a", "b", "c"], bulk=True)]
    assert check(CheckInput(events, [job("a"), job("b"), job("c")], policies=POLICIES)).ok
    assert check(CheckInput(events, [], policies=POLICIES)).ok
    assert invariants(CheckInput(events, [job("a")], policies=POLICIES)) == {"partial-batch"}


def test_a_job_started_before_its_due_time_is_caught() -> None:
    events = [*ack(0, "a"), *run("a", 1, 3)]
    assert check(CheckInput(events, [job("a", run_at=2.9)], policies=POLICIES)).ok
    assert invariants(CheckInput(events, [job("a", run_at=10)], policies=POLICIES)) == {"early-start"}


def _stored_errors(job_: StoredJob, *errors: tuple[int, str, float]) -> StoredJob:
    from dataclasses import replace

    return replace(job_, errors=tuple((a, kind, T0 + at) for a, kind, at in errors),
                   error_types=tuple(kind for _, kind, _ in errors))


def test_a_child_killed_by_the_worker_ends_its_run_at_the_stored_error() -> None:
    # Attempt 1 ran in child 20 with no end (killed at its timeout); attempt 2 ran 1.2 s later.
    events = [*ack(0, "a"), *run("a", 1, 1, pid=20, end=None), *run("a", 2, 3.2, pid=21)]
    stored = _stored_errors(job("a", attempt=2), (1, "TimeoutError", 2.1))
    assert check(CheckInput(events, [stored], policies=POLICIES)).ok
    # Without the stored error the same history is a run that never ended, overlapping the next.
    assert "concurrent-execution" in invariants(CheckInput(events, [job("a", attempt=2)], policies=POLICIES))
    # The stored error's time is the run's end: a retry before the backoff is still caught.
    early = [*ack(0, "a"), *run("a", 1, 1, pid=20, end=None), *run("a", 2, 2.3, pid=21)]
    assert "backoff" in invariants(CheckInput(early, [stored], policies=POLICIES))


def test_a_child_that_died_is_a_crash_that_explains_the_rerun() -> None:
    # The child segfaulted in attempt 1; the job was rescued and attempt 1 ran again.
    events = [*ack(0, "a"), *run("a", 1, 1, pid=20, end=None), *run("a", 1, 1.6, pid=21)]
    stored = _stored_errors(job("a", attempt=1), (1, "WorkerLost", 1.3))
    report = check(CheckInput(events, [stored], policies=POLICIES))
    assert report.ok, report.violations
    assert [(d.job, d.cause) for d in report.duplicates] == [("a", "holder crashed")]
    # Unexplained without it.
    assert "unexplained-duplicate" in invariants(CheckInput(events, [job("a", attempt=1)], policies=POLICIES))


def test_a_crash_rerun_sooner_than_the_store_clock_is_precise_is_still_explained() -> None:
    # Rescued and claimed again within 40 ms; the stored error's time (the worker's estimate
    # of the store's clock) lands 30 ms after the rerun began: the rescue write still came
    # first (the rerun's claim needed it), so the crash explains the rerun. Seen on CI.
    events = [*ack(0, "a"), *run("a", 1, 1, pid=20, end=None), *run("a", 1, 1.04, pid=21)]
    stored = _stored_errors(job("a", attempt=1), (1, "WorkerLost", 1.07))
    report = check(CheckInput(events, [stored], policies=POLICIES))
    assert report.ok, report.violations
    assert [(d.job, d.cause) for d in report.duplicates] == [("a", "holder crashed")]
    # An error from before the run began (a clock estimate early) is placed at its start.
    early = _stored_errors(job("a", attempt=1), (1, "WorkerLost", 0.98))
    assert check(CheckInput(events, [early], policies=POLICIES)).ok
