"""The checker: pure functions from a run's histories, fault log and final store to verdicts.

Jepsen's `total-queue` idea, extended to taskyard's promises. Each `check_*` function proves one
invariant and returns the `Violation`s it found (empty: proven for this run):

1. `check_lost` — every acknowledged enqueue (and every schedule fire job) ends in exactly one
   terminal state; none is missing, still active, or failed by faults alone ("dropped"); an
   `enqueue_many` cut by a kill stored all of its jobs or none.
2. `check_executions` — a completed job never starts again; every re-execution has a cause
   (retry, or its previous holder was killed, crashed, paused, cut off, stopped or skewed);
   an attempt number starts twice only after its holder lost the lease.
3. `check_retries` — attempts never exceed the retry policy; no job starts before it is due;
   retry gaps follow its backoff.
4. `check_schedules` — every fire second of the window has exactly one job under
   `misfire=all`; `once`/`skip` never double a fire and miss fires only inside disruptions.
5. `check_unique_and_fencing` — a unique key never has two live jobs; a fenced worker's late
   write never changes a job (a completed job's result comes from its last attempt).

Nothing here does I/O: the runner reads the store through the public API into `StoredJob`s.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from chaos.history import Event
from taskyard.core.retry import Retry

__all__ = (
    "BACKOFF_TOLERANCE",
    "LEASE_ERRORS",
    "CheckInput",
    "Duplicate",
    "Fault",
    "Report",
    "StoredJob",
    "Violation",
    "check",
)

#: Seconds a retry may start *before* its backoff delay is over (clock reads on one host,
#: rounding of stored times).
BACKOFF_TOLERANCE = 0.15
#: Seconds a job may start before its due time (`run_at`): stored times are rounded.
EARLY_TOLERANCE = 0.25
#: Error types a backend records when a lease expired (not the handler's doing).
LEASE_ERRORS = frozenset({"LeaseExpired"})
#: Lease losses after which a job may end failed without its handler failing (a poison pill).
POISON_LOSSES = 3
#: Process faults that explain why a job held by that process ran again.
HOLDER_FAULTS = ("kill", "exit", "stop", "partition", "term", "skew", "backend")
#: Causes that do not excuse a re-execution: the product promises none under them.
UNACCEPTABLE_CAUSES = frozenset({"unexplained", "holder's clock skewed"})


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A job as the final store shows it (times as epoch seconds)."""

    id: str
    task: str
    status: str
    attempt: int
    max_attempts: int
    run_at: float
    created_at: float
    unique_key: str | None = None
    result: Any = None
    error_types: tuple[str, ...] = ()
    errors: tuple[tuple[int, str, float], ...] = ()  # (attempt, type, at) of each stored error

    @property
    def fire(self) -> tuple[str, float] | None:
        """(schedule name, fire time) for a schedule fire's job."""
        key = self.unique_key or ""
        if not key.startswith("schedule:"):
            return None
        _, name, iso = key.split(":", 2)
        return name, datetime.fromisoformat(iso).timestamp()


@dataclass(frozen=True, slots=True)
class Fault:
    """One entry of the fault log: what the harness did (or saw) to which process, and when.

    `kind`: kill (SIGKILL), exit (the process died by itself), stop (SIGSTOP; `until` is the
    SIGCONT), term (SIGTERM), partition (its network cut or black-holed until `until`),
    skew (its clock ran `detail` off for its whole life), backend (the server restarted:
    `pid` 0 means every process).
    """

    kind: str
    at: float
    pid: int = 0  # 0: every process
    process: str = ""
    until: float | None = None
    detail: str = ""

    def covers(self, pid: int, start: float, end: float) -> bool:
        """True when this fault hit process `pid` (or everyone) within [start, end]."""
        if self.pid not in (0, pid):
            return False
        stop = self.until if self.until is not None else self.at
        if self.kind == "skew":
            return True
        return self.at <= end and stop >= start


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken promise."""

    invariant: str
    detail: str
    job: str | None = None


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A re-execution of a job that was not a planned retry, and why it happened."""

    job: str
    task: str
    attempt: int
    previous_attempt: int
    cause: str
    delay: float  # seconds from the cause (or the previous start) to this start


@dataclass
class CheckInput:
    """Everything the checker needs about one run."""

    events: Sequence[Event]
    jobs: Sequence[StoredJob]
    faults: Sequence[Fault] = ()
    policies: Mapping[str, Retry] = field(default_factory=dict)
    expected_failures: frozenset[str] = frozenset()
    schedules: Mapping[str, str] = field(default_factory=dict)  # name -> misfire policy
    window: tuple[float, float] | None = None  # fire seconds checked (inclusive)
    schedule_windows: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # per name
    disruptions: Sequence[tuple[float, float]] = ()  # where skip/once may miss fires


@dataclass
class Report:
    """The verdict of one run, with the figures the results table shows."""

    acknowledged: int = 0
    unknown: int = 0
    executions: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0  # acknowledged, not in the store
    stuck: int = 0  # in the store, not terminal when the run ended
    dropped: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)
    fires_missing: dict[str, int] = field(default_factory=dict)
    fires_doubled: dict[str, int] = field(default_factory=dict)
    longest_wait: float = 0.0
    longest_retry_lateness: float = 0.0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every invariant held."""
        return not self.violations

    def duplicate_causes(self) -> dict[str, int]:
        """How many duplicates each cause explains."""
        return dict(Counter(d.cause for d in self.duplicates))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["duplicate_causes"] = self.duplicate_causes()
        return data


# -- reading histories ------------------------------------------------------------------------


@dataclass
class Run:
    """One execution of a job: its start event and its end event (None: it never ended)."""

    start: Event
    end: Event | None

    @property
    def attempt(self) -> int:
        return int(self.start.get("attempt", 0))


def acknowledged(events: Iterable[Event]) -> tuple[dict[str, Event], set[str]]:
    """(job id -> the ack that returned it, ids whose enqueue outcome is unknown)."""
    acked: dict[str, Event] = {}
    invoked: set[str] = set()
    for event in events:
        if event.kind == "invoke":
            invoked.update(event.get("ids", ()))
        elif event.kind == "ack":
            for job in event.get("jobs", ()):
                acked.setdefault(job["id"], event)
            invoked.difference_update(event.get("ids", ()))
    return acked, invoked - set(acked)


def runs_by_job(events: Iterable[Event]) -> dict[str, list[Run]]:
    """Each job's runs in start order, each start paired with its end (same pid and attempt)."""
    open_runs: dict[tuple[str, int, int], Run] = {}
    runs: dict[str, list[Run]] = defaultdict(list)
    for event in events:
        if event.kind not in ("start", "end"):
            continue
        key = (str(event.get("job")), int(event.get("attempt", 0)), event.pid)
        if event.kind == "start":
            run = Run(event, None)
            open_runs[key] = run
            runs[key[0]].append(run)
        elif key in open_runs:
            open_runs.pop(key).end = event
    for job_runs in runs.values():
        job_runs.sort(key=lambda r: r.start.true_time)
    return dict(runs)


# -- 1. nothing lost --------------------------------------------------------------------------


def check_lost(data: CheckInput, report: Report) -> list[Violation]:
    """Every acknowledged job and every fire job is in the store, terminal, and not failed by
    faults alone."""
    acked, unknown = acknowledged(data.events)
    report.acknowledged, report.unknown = len(acked), len(unknown)
    stored = {job.id: job for job in data.jobs}
    expected = set(acked) | {job.id for job in data.jobs if job.fire is not None}
    runs = runs_by_job(data.events)
    out: list[Violation] = []
    for job_id in sorted(expected):
        job = stored.get(job_id)
        if job is None:
            report.lost += 1
            out.append(Violation("lost", "acknowledged but not in the store", job_id))
        elif job.status not in ("completed", "failed", "cancelled"):
            report.stuck += 1
            due = ""
            if job.status == "scheduled" and data.window is not None:
                due = f", due {job.run_at - data.window[1]:+.0f}s from the end of the fire window"
            out.append(Violation("not-terminal", f"still {job.status} at the end (attempt {job.attempt}{due})", job_id))
        elif job.status == "failed" and job.task not in data.expected_failures:
            handler_failed = any(r.end is not None and not r.end.get("ok") for r in runs.get(job_id, ()))
            losses = sum(t in LEASE_ERRORS for t in job.error_types)
            other = [t for t in job.error_types if t not in LEASE_ERRORS]
            if not handler_failed and (other or losses < POISON_LOSSES):
                report.dropped += 1
                out.append(Violation(
                    "dropped",
                    f"{job.task} ended failed though its handler never failed "
                    f"({len(runs.get(job_id, ()))} run(s); errors: {', '.join(job.error_types) or 'none'})",
                    job_id,
                ))
    # A batch whose enqueue_many was cut (the producer killed mid-call) is all or nothing.
    for event in data.events:
        if event.kind == "invoke" and event.get("bulk"):
            ids = list(event.get("ids", ()))
            if ids and all(i in unknown for i in ids):
                present = sum(i in stored for i in ids)
                if 0 < present < len(ids):
                    out.append(Violation(
                        "partial-batch", f"an interrupted enqueue_many stored {present} of its {len(ids)} jobs", ids[0],
                    ))
    # Unexpected: executions of jobs nobody enqueued (and no schedule fired).
    for job_id, job_runs in runs.items():
        if job_id not in expected and job_id not in unknown:
            job = stored.get(job_id)
            if job is None or job.fire is None:
                out.append(Violation("unexpected", f"ran {len(job_runs)}x but was never enqueued", job_id))
    for job in data.jobs:
        report.completed += job.status == "completed"
        report.failed += job.status == "failed"
    return out


# -- 2. executions ----------------------------------------------------------------------------


def _cause(data: CheckInput, prev: Run, nxt: Run) -> tuple[str, float]:
    """Why `nxt` started although `prev` had not failed: the first fault that hit prev's
    process between prev's start and nxt's start; ("unexplained", 0) when none did."""
    pid = prev.start.pid
    begin, end = prev.start.true_time, nxt.start.true_time
    # A skew lasts the holder's whole life: any other fault on it explains more.
    for fault in sorted(data.faults, key=lambda f: (f.kind == "skew", f.at)):
        if fault.kind in HOLDER_FAULTS and fault.covers(pid, begin, end):
            label = {
                "kill": "holder SIGKILLed", "exit": "holder crashed", "stop": "holder paused (SIGSTOP)",
                "partition": "holder cut off from the backend", "term": "holder stopped (SIGTERM)",
                "skew": "holder's clock skewed", "backend": "backend restarted",
            }[fault.kind]
            return label, max(end - max(fault.at, begin), 0.0)
    return "unexplained", end - begin


def _dies_at(data: CheckInput, pid: int) -> float:
    return min((f.at for f in data.faults if f.pid == pid and f.kind in ("kill", "exit", "term")), default=math.inf)


def _unhealthy(data: CheckInput, pid: int, start: float, end: float) -> bool:
    return any(
        f.kind in ("stop", "partition", "backend") and f.covers(pid, start, end) for f in data.faults
    )


def check_executions(data: CheckInput, report: Report) -> list[Violation]:
    """Re-executions: each has a cause; none follows an accepted completion; no two runs of a
    job overlap while both holders are healthy; an attempt starts twice only after a lease loss."""
    stored = {job.id: job for job in data.jobs}
    out: list[Violation] = []
    for job_id, job_runs in runs_by_job(data.events).items():
        report.executions += len(job_runs)
        job = stored.get(job_id)
        task = job.task if job else str(job_runs[0].start.get("task"))
        final_attempt = _result_attempt(job)
        for i in range(1, len(job_runs)):
            prev, nxt = job_runs[i - 1], job_runs[i]
            if final_attempt is not None and prev.end is not None and prev.end.get("ok") \
                    and prev.attempt == final_attempt and prev.start.get("token") == _result_token(job):
                out.append(Violation(
                    "completed-ran-again",
                    f"attempt {prev.attempt} completed (its result is stored) and attempt "
                    f"{nxt.attempt} started after it", job_id,
                ))
                continue
            failed_before = prev.end is not None and not prev.end.get("ok") and prev.end.get("error") != "cancelled"
            timed_out = prev.end is not None and prev.end.get("error") == "cancelled" and \
                nxt.attempt == prev.attempt + 1 and not _unhealthy(data, prev.start.pid, prev.start.true_time, nxt.start.true_time)
            if failed_before or timed_out:
                continue  # a retry the policy planned (error or timeout)
            cause, delay = _cause(data, prev, nxt)
            report.duplicates.append(Duplicate(job_id, task, nxt.attempt, prev.attempt, cause, round(delay, 3)))
            if cause in UNACCEPTABLE_CAUSES:
                out.append(Violation(
                    "unexplained-duplicate",
                    f"attempt {nxt.attempt} (pid {nxt.start.pid}) started {nxt.start.true_time - prev.start.true_time:.2f}s "
                    f"after attempt {prev.attempt} (pid {prev.start.pid}, "
                    f"{'ended ok' if prev.end and prev.end.get('ok') else 'no end'}); cause: {cause}",
                    job_id,
                ))
                if nxt.attempt == prev.attempt:
                    out.append(Violation("attempt-twice", f"attempt {nxt.attempt} started twice ({cause})", job_id))
            prev_end = prev.end.true_time if prev.end else _dies_at(data, prev.start.pid)
            if nxt.start.true_time < prev_end and not _unhealthy(
                data, prev.start.pid, prev.start.true_time, nxt.start.true_time
            ):
                out.append(Violation(
                    "concurrent-execution",
                    f"attempt {nxt.attempt} (pid {nxt.start.pid}) started while attempt "
                    f"{prev.attempt} (pid {prev.start.pid}) was still running on a healthy process",
                    job_id,
                ))
    return out


def _result_attempt(job: StoredJob | None) -> int | None:
    if job is None or job.status != "completed" or not isinstance(job.result, dict):
        return None
    attempt = job.result.get("attempt")
    return int(attempt) if isinstance(attempt, int) else None


def _result_token(job: StoredJob | None) -> str | None:
    if job is None or not isinstance(job.result, dict):
        return None
    token = job.result.get("token")
    return str(token) if token is not None else None


# -- 3. retry policy --------------------------------------------------------------------------


def check_retries(data: CheckInput, report: Report) -> list[Violation]:
    """No job runs more attempts than its policy allows; no job starts before its due time
    (`run_at`, minus `EARLY_TOLERANCE`); a retry after a handler error starts no earlier than
    its backoff delay (minus `BACKOFF_TOLERANCE`)."""
    stored = {job.id: job for job in data.jobs}
    out: list[Violation] = []
    runs = runs_by_job(data.events)
    for job in data.jobs:
        first = runs.get(job.id)
        # Only a job never retried still carries its first due time in `run_at`.
        if first and job.attempt <= 1 and not job.error_types and first[0].start.true_time < job.run_at - EARLY_TOLERANCE:
            early = job.run_at - first[0].start.true_time
            out.append(Violation("early-start", f"{job.task} started {early:.2f}s before its due time (pid {first[0].start.pid})", job.id))
    for job in data.jobs:
        policy = data.policies.get(job.task)
        allowed = policy.attempts if policy is not None else job.max_attempts
        if job.attempt > allowed:
            out.append(Violation("attempts", f"{job.task} reached attempt {job.attempt}; policy allows {allowed}", job.id))
    for job_id, job_runs in runs.items():
        found = stored.get(job_id)
        task = found.task if found else str(job_runs[0].start.get("task"))
        policy = data.policies.get(task)
        if policy is None:
            continue
        top = max(r.attempt for r in job_runs)
        if top > policy.attempts:
            out.append(Violation("attempts", f"{task} ran attempt {top}; policy allows {policy.attempts}", job_id))
        for prev, nxt in itertools.pairwise(job_runs):
            if prev.end is None or prev.end.get("ok") or nxt.attempt != prev.attempt + 1:
                continue
            if _unhealthy(data, prev.start.pid, prev.start.true_time, nxt.start.true_time):
                continue
            expected = policy.base_delay(prev.attempt)
            gap = nxt.start.true_time - prev.end.true_time
            if gap < expected - BACKOFF_TOLERANCE:
                out.append(Violation(
                    "backoff", f"attempt {nxt.attempt} started {gap:.3f}s after attempt {prev.attempt} "
                    f"failed; the policy waits {expected:.3f}s", job_id,
                ))
            report.longest_retry_lateness = max(report.longest_retry_lateness, gap - expected)
    return out


# -- 4. schedules -----------------------------------------------------------------------------


def check_schedules(data: CheckInput, report: Report) -> list[Violation]:
    """Every fire second of the window: exactly one job under `all`; never two under any policy;
    `skip` and `once` miss fires only inside disruptions."""
    if data.window is None or not data.schedules:
        return []
    fires: dict[str, Counter[int]] = defaultdict(Counter)
    for job in data.jobs:
        fire = job.fire
        if fire is not None and math.isclose(fire[1], round(fire[1]), abs_tol=1e-6):
            fires[fire[0]][round(fire[1])] += 1
    out: list[Violation] = []
    for name, policy in sorted(data.schedules.items()):
        start, end = data.schedule_windows.get(name, data.window)
        seconds = range(math.ceil(start), math.floor(end) + 1)
        counts = fires.get(name, Counter())
        missing = [s for s in seconds if counts[s] == 0]
        doubled = [s for s in seconds if counts[s] > 1]
        report.fires_missing[name] = len(missing)
        report.fires_doubled[name] = len(doubled)
        if doubled:
            out.append(Violation("fire-doubled", f"{name}: {len(doubled)} fire(s) made two jobs, first at {_iso(doubled[0])}"))
        if policy == "all":
            if missing:
                out.append(Violation("fire-missing", f"{name} (misfire=all): {len(missing)} of {len(seconds)} fire seconds have no job, e.g. {_iso(missing[0])}"))
        else:
            outside = [s for s in missing if not any(a - 1 <= s <= b + 1 for a, b in data.disruptions)]
            if outside:
                out.append(Violation("fire-missing", f"{name} (misfire={policy}): {len(outside)} fire(s) missing outside any disruption, e.g. {_iso(outside[0])}"))
    return out


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


# -- 5. uniqueness and fencing ----------------------------------------------------------------


def check_unique_and_fencing(data: CheckInput, report: Report) -> list[Violation]:
    """No unique key has two live jobs (at the end, or running at once); every completed job's
    stored result was written by its last attempt."""
    out: list[Violation] = []
    live = Counter(
        job.unique_key for job in data.jobs
        if job.unique_key and job.status in ("scheduled", "pending", "running")
    )
    for key, count in live.items():
        if count > 1:
            out.append(Violation("unique", f"unique key {key!r} has {count} live jobs"))
    runs = runs_by_job(data.events)
    by_key: dict[str, list[tuple[str, Run]]] = defaultdict(list)
    for job_id, job_runs in runs.items():
        for run in job_runs:
            key = run.start.get("unique_key")
            if key and not str(key).startswith("schedule:"):
                by_key[str(key)].append((job_id, run))
    for key, items in by_key.items():
        items.sort(key=lambda item: item[1].start.true_time)
        for (a_id, a), (b_id, b) in itertools.pairwise(items):
            a_end = a.end.true_time if a.end else _dies_at(data, a.start.pid)
            if a_id != b_id and b.start.true_time < a_end and not _unhealthy(
                data, a.start.pid, a.start.true_time, b.start.true_time
            ):
                out.append(Violation("unique", f"jobs {a_id} and {b_id} of unique key {key!r} ran at once", b_id))
    for job in data.jobs:
        if job.status != "completed" or not isinstance(job.result, dict):
            continue
        attempt = _result_attempt(job)
        if attempt is not None and attempt != job.attempt:
            out.append(Violation(
                "stale-write", f"result written by attempt {attempt}, but the job's last attempt is {job.attempt}", job.id,
            ))
            continue
        tokens = [r.start.get("token") for r in runs.get(job.id, ()) if r.attempt == job.attempt]
        if tokens and _result_token(job) not in tokens:
            out.append(Violation("stale-write", "result carries a lease token no run of its last attempt held", job.id))
    # How long jobs waited beyond their due time (first start - run_at), for the table.
    for job in data.jobs:
        first = runs.get(job.id)
        if first:
            report.longest_wait = max(report.longest_wait, first[0].start.true_time - job.run_at)
    return out


#: Errors the worker stores for a run it stopped by killing the handler's child process: the
#: run ends then, though its handler never returned (no `end` in the history).
KILLED_BY_WORKER = frozenset({"TimeoutError", "MemoryLimitExceeded"})
#: The error stored for a run whose child process died (a crash: the job is rescued).
CHILD_LOST = "WorkerLost"


def with_worker_stops(data: CheckInput) -> CheckInput:
    """`data` with what the worker saw of its child processes: a run without an end whose
    attempt has a stored `KILLED_BY_WORKER` error ends at that error (not ok); one whose
    attempt has a `CHILD_LOST` error had its process die then (an `exit` fault on its pid).

    An error's time is the worker's estimate of the store's clock, off by up to half a round
    trip (tens of ms on a loaded machine), while the histories use this machine's clock. It
    is placed within what causality allows: after the run started, and before the job's next
    run started (the write that ended the run, fenced by its lease token, came before the
    claim that began the next one). Without that, a crash rescued and claimed again within
    40 ms looked like an unexplained second start of the attempt."""
    stored = {job.id: job for job in data.jobs}
    events = list(data.events)
    faults = list(data.faults)
    for job_id, job_runs in runs_by_job(data.events).items():
        job = stored.get(job_id)
        if job is None or not job.errors:
            continue
        used: set[int] = set()
        for k, run in enumerate(job_runs):
            if run.end is not None:
                continue
            following = job_runs[k + 1].start.true_time if k + 1 < len(job_runs) else math.inf
            for i, (attempt, kind, when) in enumerate(job.errors):
                if i in used or attempt != run.attempt or when < run.start.true_time - 1.0:
                    continue
                used.add(i)
                at = min(max(when, run.start.true_time), following)
                if kind in KILLED_BY_WORKER:
                    start = run.start
                    events.append(Event(kind="end", t=at + start.skew, pid=start.pid, process=start.process,
                                        skew=start.skew, data={**start.data, "ok": False, "error": kind}))
                elif kind == CHILD_LOST:
                    faults.append(Fault("exit", at, run.start.pid, f"{run.start.process} child"))
                break
    events.sort(key=lambda e: e.true_time)
    return replace(data, events=events, faults=faults)


def check(data: CheckInput) -> Report:
    """Every invariant over one run."""
    data = with_worker_stops(data)
    report = Report()
    for step in (check_lost, check_executions, check_retries, check_schedules, check_unique_and_fencing):
        report.violations.extend(step(data, report))
    return report
