"""The `Backend` protocol: every storage operation taskyard needs, named noun-first.

Each backend (memory, sqlite, postgres, redis) implements the meaning of these operations and
passes the same conformance suite (`tests/conformance/`). Rules that hold for every method:

* Arguments are keyword-only. `now` is the time to act at; None means the store's clock
  (PostgreSQL `now()`, Redis `TIME`; SQLite has none: see `jobs_rescue_expired`).
* Every method is atomic: it either makes all of its changes or none.
* Status changes follow `taskyard.core.job.TRANSITIONS` and nothing else.
* Writes made by a worker after a claim carry the claim's `lease_token`; when the token no
  longer matches (the job was rescued, cancelled or handed to someone else), the write is
  refused (`LeaseLost`, or reported per job by batch operations: `jobs_settle` answers
  `owned=False`, `jobs_extend_leases` lists it as lost).
* Driver errors are converted at the boundary: connection failures raise `BackendUnavailable`.

Ordering of claims: higher `priority` first, then earlier `run_at`, then lower id.

Workflow steps (jobs with a `workflow_id`) follow `core.workflow`'s rules inside the same
atomic write as whatever finishes, cancels or retries them: `jobs_settle`, `job_cancel`,
`job_retry`, `jobs_retry_failed`, `jobs_rescue_expired`, `workflow_cancel` and
`workflow_retry` update the step's edges and its children (unblocked, cancelled or revived)
before they commit. No other process and no later sweep is needed for a workflow to advance.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from taskyard.backends.transactional import TransactionalEnqueue, TransactionalWorkflows
from taskyard.backends.unset import UNSET, Unset
from taskyard.core.cluster import LeaderInfo, WorkerInfo
from taskyard.core.coverage import TaskCounts
from taskyard.core.job import (
    Job,
    JobDraft,
    JobFilter,
    JobPage,
    JobStatus,
    LeaseReport,
    Progress,
    RescueReport,
)
from taskyard.core.queue import DepthRow, QueueCounts, QueueSettings, RateLimit, StatsRow
from taskyard.core.schedule import Schedule
from taskyard.core.settle import Settle, Settled
from taskyard.core.workflow import Workflow, WorkflowDraft, WorkflowPage

__all__ = ("UNSET", "Backend", "TransactionalEnqueue", "TransactionalWorkflows", "Unset")


@runtime_checkable
class Backend(Protocol):
    """Durable storage of jobs, queues, schedules, leadership and workers."""

    url: str
    #: Whether one instance may be used from several threads and event loops at once (the
    #: memory backend); False: each loop builds its own instance from `url`.
    shared_across_loops: bool

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect (and for SQLite, create and migrate the schema). Idempotent."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent; a closed backend may be opened again."""
        ...

    async def ping(self) -> None:
        """Round-trip to the store; raises `BackendUnavailable` when it cannot be reached."""
        ...

    async def migrate(self) -> int:
        """Bring the schema up to date; returns the schema version now in place."""
        ...

    async def schema_version(self) -> int:
        """The schema version in place, 0 when there is none yet. Reads only: creates and
        migrates nothing (so `taskyard migrate` can say what it did)."""
        ...

    async def server_check(self) -> list[str]:
        """Read the store's settings that durability depends on (a task server does this once
        at start). Returns warnings to log (e.g. a setting under which an acknowledged
        enqueue may not survive a crash); raises `ConfigError` for a setting under which the
        store may drop jobs silently while running (a Redis that evicts keys).
        """
        ...

    async def store_time(self) -> datetime | None:
        """The store's own clock (PostgreSQL `clock_timestamp()`, Redis `TIME`), or None for a
        store without one (SQLite, memory: the processes share this machine's clock). Services
        that compare times written by several machines (the scheduler's fire times) read it
        so a process whose clock is off neither fires early nor late."""
        ...

    # -- jobs: writes by clients -------------------------------------------------------------
    async def job_enqueue_many(
        self, *, drafts: Sequence[JobDraft], now: datetime | None = None
    ) -> list[Job]:
        """Store new jobs, in one round-trip; returns one job per draft, in order.

        A draft whose id already exists returns the stored job unchanged (idempotent retry).
        A draft whose `unique_key` matches a scheduled, pending or running job returns that
        job instead of creating one (also within the same batch). `run_at` in the future →
        `scheduled`, else `pending`. `attempt` starts at 0. Wakes waiting workers.
        """
        ...

    async def job_get(self, *, job_id: str) -> Job | None:
        """The job, or None."""
        ...

    async def jobs_list(
        self, *, filter: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """Jobs matching `filter`, newest first (by id, descending), `limit` per page.

        `cursor` is the `next_cursor` of the previous page; pages never repeat or skip a job
        that existed when the first page was read. With `filter.q` a store may bound the work
        of one call and answer fewer than `limit` jobs with a `next_cursor` (Redis); only
        `next_cursor` None means the listing is over.
        """
        ...

    async def job_cancel(self, *, job_id: str, now: datetime | None = None) -> Job:
        """Cancel: scheduled|pending → cancelled at once; running → `cancel_requested` set
        (the worker stops the handler and records `cancelled`); cancelled → unchanged.

        Raises `JobNotFound`, or `InvalidTransitionError` for completed and failed jobs.
        """
        ...

    async def job_retry(self, *, job_id: str, now: datetime | None = None) -> Job:
        """Manual retry: failed|cancelled → pending with `attempt` reset to 0 (errors kept,
        result, progress and finish time cleared). Raises `JobNotFound` or
        `InvalidTransitionError` from any other status, or while another active job holds
        its `unique_key` (`jobs_retry_failed` skips such jobs). A workflow step goes back to
        `blocked` while an edge into it is open, is refused while one is `failed` (its parent
        is the step to retry), and revives the children it had cancelled (`core.workflow`).
        """
        ...

    async def jobs_delete(self, *, ids: Sequence[str]) -> list[str]:
        """Delete the jobs of `ids` that are finished (`core.job.DELETABLE_STATUSES`), each
        atomically with its status check; returns the ids deleted. Unknown ids, jobs in any
        other status (a running job's worker still settles it) and workflow steps (deleted with
        their workflow, `workflows_prune`) are left as they are."""
        ...

    async def jobs_retry_failed(self, *, queue: str | None = None, now: datetime | None = None) -> int:
        """Manual retry of every failed job (of one queue, or all); returns how many."""
        ...

    # -- jobs: the worker's side -------------------------------------------------------------
    async def job_claim(
        self,
        *,
        queues: Sequence[str] | None,
        limit: int,
        worker_id: str,
        lease: float,
        now: datetime | None = None,
        tasks: Collection[str] | None = None,
    ) -> list[Job]:
        """Claim up to `limit` due jobs (pending, or scheduled with run_at <= now) from
        `queues` (None = every queue), ordered by priority desc, run_at, id.

        `tasks` (None = any task) restricts the claim to jobs of those task names: a job of
        another task is left exactly as it is (no attempt used, no field changed) and does not
        hold back the claimable jobs behind it, whose order is kept. An empty collection
        claims nothing. A backend may bound how many skipped jobs one claim looks past
        (Redis: `SKIP_SCAN_CAP`).

        Skips paused queues; never lets a queue's running jobs exceed its `concurrency`;
        never starts more than its rate limit allows in the current window. Each claimed job
        becomes running with `attempt + 1`, `started_at = now`, `worker_id`, a fresh
        `lease_token` and `lease_expires_at = now + lease`. No job is ever claimed by two
        callers at once.
        """
        ...

    async def jobs_extend_leases(
        self,
        *,
        leases: Mapping[str, str],
        lease: float,
        now: datetime | None = None,
    ) -> LeaseReport:
        """Heartbeat: for each `job_id -> lease_token` still owned, push the lease to
        `now + lease`. Reports ids whose token no longer matches (lost) and ids whose
        cancellation was requested.
        """
        ...

    async def job_set_progress(
        self, *, job_id: str, lease_token: str, progress: Progress, now: datetime | None = None
    ) -> None:
        """Record progress of a running job; raises `LeaseLost` if the token does not own it."""
        ...

    async def jobs_settle(self, *, outcomes: Sequence[Settle], now: datetime | None = None) -> list[Settled]:
        """The one owned write: for each outcome (`core.settle.Settle`), if its lease token
        still owns its job (running, same token), move the job to the state the outcome's kind
        says, atomically; otherwise write nothing and answer `owned=False`. One `Settled` per
        outcome, in order; outcomes are independent (one refused leaves the others written).
        Never raises `LeaseLost`; raises `BackendUnavailable` when the store is unreachable
        (the caller retries the batch: a write already applied is then refused, not repeated).
        """
        ...

    # -- jobs: maintenance -------------------------------------------------------------------
    async def jobs_rescue_expired(self, *, now: datetime | None = None) -> RescueReport:
        """Running jobs whose lease expired before `now`: carry out
        `core.job.rescue_decision` for each (pending with `attempt - 1` and `rescues + 1`, or
        failed past `max_rescues`; a `LeaseExpired` error recorded either way). Each write is
        conditional — still running, same lease token, lease still expired — so any number of
        processes may call this at once and each job is rescued exactly once. SQLite, with no
        clock of its own, treats `now=None` as "expired" = seen unchanged (same token and
        expiry) by this instance for a whole lease on its monotonic clock.
        """
        ...

    async def jobs_promote_due(self, *, now: datetime | None = None) -> int:
        """scheduled → pending for jobs with `run_at <= now`; returns how many."""
        ...

    async def jobs_prune(
        self,
        *,
        status: JobStatus,
        keep_last: int | None = None,
        older_than: datetime | None = None,
        queue: str | None = None,
        exclude_queues: Collection[str] = (),
    ) -> int:
        """Delete finished jobs of `status` (completed, failed or cancelled only): those
        beyond the newest `keep_last` (by finished_at), and/or those finished before
        `older_than`. A job is deleted if either rule selects it. Only jobs of `queue` when
        given, and never jobs of the queues in `exclude_queues` (they have rules of their
        own): `keep_last` counts the newest among the jobs in scope. Workflow steps are never
        pruned here (their workflow's children read their results; `workflows_prune` removes
        them with their workflow). Returns how many.
        """
        ...

    # -- queues ------------------------------------------------------------------------------
    async def queue_counts(self) -> list[QueueCounts]:
        """Counts per status for every queue that has jobs or settings, sorted by name."""
        ...

    async def task_counts(self, *, now: datetime | None = None) -> list[TaskCounts]:
        """Scheduled, pending and running jobs per (queue, task) that has any, with the
        earliest `run_at` of its due ones (pending, or scheduled with `run_at <= now`);
        sorted by queue then task. Reads every active job: cost grows with the backlog.
        """
        ...

    async def queue_get(self, *, queue: str) -> QueueSettings:
        """The settings of `queue` (defaults when never set)."""
        ...

    async def queues_list(self) -> list[QueueSettings]:
        """Settings of every queue that has jobs or stored settings, sorted by name."""
        ...

    async def queue_update(
        self,
        *,
        queue: str,
        paused: bool = UNSET,
        concurrency: int | None = UNSET,
        rate_limit: RateLimit | None = UNSET,
    ) -> QueueSettings:
        """Change some settings of `queue` (UNSET leaves one as it is); returns them all.
        Resuming a queue wakes waiting workers.
        """
        ...

    # -- statistics --------------------------------------------------------------------------
    async def stats_record(self, *, rows: Sequence[StatsRow]) -> None:
        """Add per-minute outcome counts and latency histograms, cell by cell, to what is
        stored for that (minute, queue, task); atomic per call. Rows older than
        `STATS_RETENTION` before the newest minute of the call may be discarded.
        """
        ...

    async def stats_read(self, *, since: datetime, bin_minutes: int = 1) -> list[StatsRow]:
        """Per-minute rows from `since` on, one per (minute, queue, task), sorted by minute,
        queue, then task; `latency` is () where nothing was recorded. With `bin_minutes` > 1
        the minutes are summed (counts and latency cells) into bins of that many minutes
        aligned to the Unix epoch, each row's `minute` being its bin's start. Rows more than
        `STATS_RETENTION` older than the newest minute recorded may be discarded.
        """
        ...

    async def stats_record_depth(self, *, rows: Sequence[DepthRow]) -> None:
        """Store waiting-job samples: each row replaces what is stored for its (minute,
        queue), the last sample of a minute winning. Pruned as `stats_record` prunes."""
        ...

    async def stats_read_depth(self, *, since: datetime) -> list[DepthRow]:
        """Depth samples from `since` on, sorted by minute then queue."""
        ...

    # -- schedules ---------------------------------------------------------------------------
    async def schedule_upsert(self, *, schedule: Schedule) -> Schedule:
        """Insert or replace the schedule of that name; returns what is stored."""
        ...

    async def schedule_get(self, *, name: str) -> Schedule | None:
        """The schedule, or None."""
        ...

    async def schedules_list(self, *, owner: str | None = None) -> list[Schedule]:
        """All schedules (or one owner's), sorted by name."""
        ...

    async def schedules_get(self, *, names: Sequence[str]) -> list[Schedule]:
        """The stored schedules among `names`, sorted by name (missing names are left out)."""
        ...

    async def schedules_confirm(self, *, names: Sequence[str], now: datetime | None = None) -> int:
        """Set `confirmed_at = now` on the schedules among `names` whose source is "code",
        changing nothing else; returns how many. One cheap write per scheduler pass.
        """
        ...

    async def schedules_expire_declared(self, *, grace: float, now: datetime | None = None) -> list[str]:
        """In one step, over schedules whose source is "code": delete those whose
        `confirmed_at` is before `now - grace` (nobody declares them any more), and set
        `confirmed_at = now` on those that have none (stored before declarations were
        confirmed: their grace starts now). Returns the deleted names, sorted.
        """
        ...

    async def schedule_delete(self, *, name: str) -> bool:
        """Delete one schedule; False when there was none."""
        ...

    async def schedules_replace_owner(self, *, owner: str, schedules: Sequence[Schedule]) -> None:
        """In one step: delete every schedule of `owner` and store `schedules` in their place."""
        ...

    async def schedules_delete_owner(self, *, owner: str) -> int:
        """Delete every schedule of `owner`; returns how many."""
        ...

    async def schedules_due(self, *, now: datetime | None = None) -> list[Schedule]:
        """Enabled schedules whose `next_fire_at <= now`, earliest first."""
        ...

    async def schedule_record_fire(
        self, *, name: str, fire_time: datetime, next_fire_at: datetime | None
    ) -> bool:
        """Compare-and-set: when the schedule's `last_fire_at` is None or earlier than
        `fire_time`, set `last_fire_at = fire_time` and `next_fire_at`, and return True;
        otherwise change nothing and return False (another scheduler recorded it).
        """
        ...

    # -- leadership --------------------------------------------------------------------------
    async def leader_attempt_elect(
        self, *, name: str, holder: str, ttl: float, now: datetime | None = None
    ) -> bool:
        """Acquire the lease `name` if free or expired, or renew it if `holder` has it;
        True when `holder` leads until `now + ttl`.
        """
        ...

    async def leader_resign(self, *, name: str, holder: str) -> None:
        """Release the lease if `holder` has it, so a successor can take over at once."""
        ...

    async def leader_get(self, *, name: str, now: datetime | None = None) -> LeaderInfo | None:
        """The live holder of the lease, or None."""
        ...

    # -- workers -----------------------------------------------------------------------------
    async def worker_heartbeat(self, *, info: WorkerInfo) -> None:
        """Register or refresh a worker (its `last_heartbeat`, current jobs and the task names
        it can run)."""
        ...

    async def worker_remove(self, *, worker_id: str) -> None:
        """Unregister a worker (clean shutdown)."""
        ...

    async def workers_list(self) -> list[WorkerInfo]:
        """Registered workers, sorted by id."""
        ...

    async def workers_prune(self, *, older_than: datetime) -> int:
        """Remove workers whose last heartbeat is before `older_than`; returns how many."""
        ...

    # -- workflows ---------------------------------------------------------------------------
    async def workflow_enqueue(self, *, workflow: WorkflowDraft, now: datetime | None = None) -> Workflow:
        """Store a workflow in one atomic write: its header (created at `now`), every step as
        a job (`blocked` when it has parents, else pending or scheduled as any job) and every
        edge, open. Wakes waiting workers. A workflow whose id is already stored is returned
        as stored, unchanged (an enqueue retried after a lost reply)."""
        ...

    async def workflow_get(self, *, workflow_id: str) -> Workflow | None:
        """The workflow with its steps (in step order) and edges, or None. Steps deleted since
        (pruned) are left out."""
        ...

    async def workflows_list(self, *, limit: int = 50, cursor: str | None = None) -> WorkflowPage:
        """Workflows newest first (by id, descending), each with its steps and edges, `limit`
        per page; `cursor` is the previous page's `next_cursor`."""
        ...

    async def workflow_cancel(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        """Cancel a whole workflow atomically: `cancelled_at = now` on its header (kept when
        already set), every blocked, scheduled or pending step cancelled, every running step
        asked to stop (`cancel_requested`; its worker records the cancel). Finished steps are
        left as they are. Returns the workflow after; raises `WorkflowNotFound`."""
        ...

    async def workflows_prune(self, *, finished_before: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` finished workflows (no step left to run) whose last step
        finished before `finished_before`, each with its steps and edges, atomically per
        workflow; returns how many workflows were deleted."""
        ...

    async def workflow_retry(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        """Resume a workflow atomically: clear `cancelled_at`, then, in step order, retry every
        failed or cancelled step that has no `failed` edge into it (a step cancelled by its
        failed parent comes back through that parent's retry). Returns the workflow after;
        raises `WorkflowNotFound`."""
        ...

    # -- wake-ups ----------------------------------------------------------------------------
    async def wait_for_jobs(self, *, queues: Sequence[str] | None, timeout: float) -> None:
        """Return when jobs may have become available in `queues` (an enqueue, a resume, a
        release), or after `timeout` seconds. May return early; a lost notification only adds
        latency, so callers always poll again.
        """
        ...
