"""`SqliteBackend`: the `Backend` protocol on one SQLite file (`sqlite:///PATH`).

Several processes on one host may share the file: claims take the write lock first
(`BEGIN IMMEDIATE`). Wake-ups: an in-process `Waker`, plus `PRAGMA data_version` polled
every few milliseconds while waiting, which changes when another connection commits.
SQLite has no clock of its own: called with `now=None`, rescues go by what this instance has
seen stay unrenewed (`jobs.rescue_unrenewed`), so a process with a skewed clock rescues no
live job.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from taskyard.backends.protocol import UNSET
from taskyard.backends.wakeup import Waker
from taskyard.clock import utcnow
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
    check_prunable,
)
from taskyard.core.queue import DepthRow, QueueCounts, QueueSettings, RateLimit, StatsRow
from taskyard.core.schedule import Schedule
from taskyard.core.settle import Settle, Settled
from taskyard.core.workflow import Workflow, WorkflowDraft, WorkflowPage
from taskyard.errors import BackendError

from . import claims, cluster, jobs, queues, runs, search, stats, workflows
from .connection import Connection, parse_url
from .rows import to_us
from .schema import apply_migrations, schema_version

__all__ = ("SqliteBackend",)

#: Batches of the search index's catch-up (`search.CATCH_UP_BATCH` jobs each) per call of
#: `jobs_promote_due`, which the maintenance leader makes every second: up to 20,000 jobs a
#: second are indexed ahead of searches, and a promotion waits for no more than that.
_CATCH_UP_BATCHES = 4
#: Polling of `PRAGMA data_version` while waiting: fast after activity, slower when idle.
_POLL_MIN = 0.002
_POLL_MAX = 0.05


class SqliteBackend:
    """Durable backend on one SQLite file in WAL mode; see `SqliteOptions` for URL options."""

    shared_across_loops = False

    def __init__(self, url: str = "sqlite:///taskyard.db") -> None:
        self.url = url
        self.options = parse_url(url)
        self._db = Connection(self.options)
        self._waker = Waker()
        self._wakes = 0  # bumped on every local notify, so a waiter knows it was woken
        self._seen_version: int | None = None
        self._poll = _POLL_MIN
        self._leases_seen: jobs.LeasesSeen = {}  # rescues by observation (now=None)

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the file (created if missing) and apply missing migrations."""
        if self._db.is_open:
            return
        await self._db.open()
        try:
            await self._db.run(lambda c: apply_migrations(c, path=self.options.path))
        except BaseException:
            await self._db.close()
            raise

    async def close(self) -> None:
        await self._db.close()
        self._notify()

    async def ping(self) -> None:
        await self._db.run(lambda c: c.execute("SELECT 1").fetchone())

    async def store_time(self) -> datetime | None:
        return None  # a file has no clock: the processes sharing it share this machine's

    async def server_check(self) -> list[str]:
        # WAL and the synchronous level come from the URL, which parse_url validated.
        return []

    async def schema_version(self) -> int:
        def read() -> int:
            if self.options.path == ":memory:" or not Path(self.options.path).exists():
                return 0
            conn = sqlite3.connect(f"file:{Path(self.options.path).as_posix()}?mode=ro", uri=True)
            try:
                return schema_version(conn)
            except sqlite3.Error as exc:
                raise BackendError(f"SQLite file {self.options.path!r}: {exc}") from exc
            finally:
                conn.close()

        return await asyncio.to_thread(read)

    async def migrate(self) -> int:
        await self.open()
        return await self._db.run(lambda c: apply_migrations(c, path=self.options.path))

    def _notify(self) -> None:
        self._wakes += 1
        self._waker.notify()

    # -- jobs: writes by clients -------------------------------------------------------------
    async def job_enqueue_many(
        self, *, drafts: Sequence[JobDraft], now: datetime | None = None
    ) -> list[Job]:
        at = now or utcnow()
        out = await self._db.write(lambda c: jobs.enqueue_many(c, drafts, at))
        if out:
            self._notify()
        return out

    async def job_get(self, *, job_id: str) -> Job | None:
        return await self._db.run(lambda c: jobs.get(c, job_id))

    async def jobs_list(
        self, *, filter: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        if filter.q is not None and search.uses_index(filter.q):
            # Every job when few are missing (the usual case: maintenance indexes a few
            # batches a second); after a large load a few batches only, the jobs still above
            # the mark being matched by a scan of their rowids (`search.search_condition`).
            await self.search_catch_up(batches=search.SEARCH_CATCH_UP_BATCHES, whole_within=search.SEARCH_CATCH_UP_ALL)
        return await self._db.read(lambda c: jobs.list_page(c, filter, limit, cursor))

    async def job_cancel(self, *, job_id: str, now: datetime | None = None) -> Job:
        at = now or utcnow()
        job, woken = await self._db.write(lambda c: jobs.cancel(c, job_id, at))
        if woken:
            self._notify()
        return job

    async def job_retry(self, *, job_id: str, now: datetime | None = None) -> Job:
        at = now or utcnow()
        job = await self._db.write(lambda c: jobs.retry(c, job_id, at))
        self._notify()
        return job

    async def jobs_delete(self, *, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        return await self._db.write(lambda c: jobs.delete(c, ids))

    async def jobs_retry_failed(
        self, *, queue: str | None = None, now: datetime | None = None
    ) -> int:
        at = now or utcnow()
        n = await self._db.write(lambda c: jobs.retry_failed(c, queue, at))
        if n:
            self._notify()
        return n

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
        at = now or utcnow()
        wanted = None if queues is None else list(queues)
        known = None if tasks is None else list(tasks)

        def claim(c: sqlite3.Connection) -> list[Job]:
            # Read before the transaction: any commit after it makes `wait_for_jobs` return.
            self._seen_version = c.execute("PRAGMA data_version").fetchone()[0]
            c.execute("BEGIN IMMEDIATE")
            try:
                claimed = claims.claim(c, wanted, limit, worker_id, lease, at, known)
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
            return claimed

        return await self._db.run(claim)

    async def jobs_extend_leases(
        self, *, leases: Mapping[str, str], lease: float, now: datetime | None = None
    ) -> LeaseReport:
        if not leases:
            return LeaseReport()
        at = now or utcnow()
        return await self._db.write(lambda c: runs.extend_leases(c, leases, lease, at))

    async def job_set_progress(
        self, *, job_id: str, lease_token: str, progress: Progress, now: datetime | None = None
    ) -> None:
        await self._db.write(lambda c: runs.set_progress(c, job_id, lease_token, progress))

    async def jobs_settle(
        self, *, outcomes: Sequence[Settle], now: datetime | None = None
    ) -> list[Settled]:
        if not outcomes:
            return []
        at = now or utcnow()
        answers, woken = await self._db.write(lambda c: runs.settle(c, outcomes, at))
        if woken or any(a.job is not None and a.job.status is JobStatus.PENDING for a in answers):
            self._notify()
        return answers

    # -- jobs: maintenance -------------------------------------------------------------------
    async def jobs_rescue_expired(self, *, now: datetime | None = None) -> RescueReport:
        if now is not None:
            report = await self._db.write(lambda c: jobs.rescue_expired(c, now))
        else:
            # No store clock: judge by what this instance itself saw stay unrenewed. The look
            # is a plain read, so rescuers beside every worker take the write lock only when
            # there is something to rescue.
            seen, mono, at = self._leases_seen, time.monotonic(), utcnow()
            doomed = await self._db.run(lambda c: jobs.unrenewed(c, seen, mono, at))
            if not doomed:
                return RescueReport()
            report = await self._db.write(lambda c: jobs.rescue_unrenewed(c, doomed, at))
        # A step failed for good may have unblocked its children (`continue`, `ignore`).
        if report.rescued or report.failed:
            self._notify()
        return report

    async def jobs_promote_due(self, *, now: datetime | None = None) -> int:
        """Also the search index's upkeep (the maintenance leader calls this every second):
        after the promotion, index up to `_CATCH_UP_BATCHES` batches of new jobs, so that a
        search seldom has to catch up itself."""
        at = now or utcnow()
        moved = await self._db.write(lambda c: jobs.promote_due(c, at))
        if moved:
            self._notify()
        await self.search_catch_up(batches=_CATCH_UP_BATCHES)
        return moved

    # -- the search index (SQLite only) ----------------------------------------------------
    async def search_catch_up(self, *, batches: int | None = None, whole_within: int | None = None) -> int:
        """Index the jobs stored since the last catch-up, one write transaction per
        `search.CATCH_UP_BATCH` jobs (other writers wait one batch at most), up to the newest
        job when it began, or `batches` batches unless at most `whole_within` are missing.
        Returns the jobs indexed. Run before a search and, a few batches, by maintenance."""
        mark, top = await self._db.run(search.index_bounds)
        if whole_within is not None and top - mark <= whole_within:
            batches = None
        indexed = done = 0
        while mark < top and (batches is None or done < batches):
            count, mark = await self._db.write(search.catch_up)
            if not count:
                break
            indexed += count
            done += 1
        return indexed

    async def search_reset(self) -> None:
        """Empty the search index; the catch-up then indexes every job again (the next search
        pays for it, or maintenance does it ahead). Run it after a VACUUM of the file, before
        anything else writes to it: VACUUM may renumber the rowids the index is keyed by."""
        await self._db.write(search.reset)

    async def jobs_prune(
        self,
        *,
        status: JobStatus,
        keep_last: int | None = None,
        older_than: datetime | None = None,
        queue: str | None = None,
        exclude_queues: Collection[str] = (),
    ) -> int:
        status = JobStatus(status)
        check_prunable(status)
        return await self._db.write(lambda c: jobs.prune(
            c, status, keep_last, older_than, queue=queue, exclude_queues=tuple(exclude_queues)
        ))

    # -- queues ------------------------------------------------------------------------------
    async def queue_counts(self) -> list[QueueCounts]:
        return await self._db.read(queues.counts)

    async def task_counts(self, *, now: datetime | None = None) -> list[TaskCounts]:
        now_us = to_us(now or utcnow())
        return await self._db.read(lambda c: queues.task_counts(c, now_us))

    async def queue_get(self, *, queue: str) -> QueueSettings:
        return await self._db.run(lambda c: queues.get(c, queue))

    async def queues_list(self) -> list[QueueSettings]:
        return await self._db.run(queues.list_all)

    async def queue_update(
        self,
        *,
        queue: str,
        paused: bool = UNSET,
        concurrency: int | None = UNSET,
        rate_limit: RateLimit | None = UNSET,
    ) -> QueueSettings:
        settings = await self._db.write(
            lambda c: queues.update(c, queue, paused, concurrency, rate_limit)
        )
        self._notify()
        return settings

    # -- statistics --------------------------------------------------------------------------
    async def stats_record(self, *, rows: Sequence[StatsRow]) -> None:
        if rows:
            await self._db.write(lambda c: stats.stats_record(c, rows))

    async def stats_read(self, *, since: datetime, bin_minutes: int = 1) -> list[StatsRow]:
        return await self._db.run(lambda c: stats.stats_read(c, since, bin_minutes))

    async def stats_record_depth(self, *, rows: Sequence[DepthRow]) -> None:
        if rows:
            await self._db.write(lambda c: stats.depth_record(c, rows))

    async def stats_read_depth(self, *, since: datetime) -> list[DepthRow]:
        return await self._db.run(lambda c: stats.depth_read(c, since))

    # -- schedules ---------------------------------------------------------------------------
    async def schedule_upsert(self, *, schedule: Schedule) -> Schedule:
        return await self._db.write(lambda c: cluster.schedule_upsert(c, schedule))

    async def schedule_get(self, *, name: str) -> Schedule | None:
        return await self._db.run(lambda c: cluster.schedule_get(c, name))

    async def schedules_list(self, *, owner: str | None = None) -> list[Schedule]:
        return await self._db.run(lambda c: cluster.schedules_list(c, owner))

    async def schedules_get(self, *, names: Sequence[str]) -> list[Schedule]:
        return await self._db.run(lambda c: cluster.schedules_get(c, names))

    async def schedules_confirm(self, *, names: Sequence[str], now: datetime | None = None) -> int:
        at = now or utcnow()
        return await self._db.write(lambda c: cluster.schedules_confirm(c, names, at))

    async def schedules_expire_declared(self, *, grace: float, now: datetime | None = None) -> list[str]:
        at = now or utcnow()
        return await self._db.write(lambda c: cluster.schedules_expire_declared(c, grace, at))

    async def schedule_delete(self, *, name: str) -> bool:
        return await self._db.write(lambda c: cluster.schedule_delete(c, name))

    async def schedules_replace_owner(self, *, owner: str, schedules: Sequence[Schedule]) -> None:
        await self._db.write(lambda c: cluster.schedules_replace_owner(c, owner, schedules))

    async def schedules_delete_owner(self, *, owner: str) -> int:
        return await self._db.write(lambda c: cluster.schedules_delete_owner(c, owner))

    async def schedules_due(self, *, now: datetime | None = None) -> list[Schedule]:
        at = now or utcnow()
        return await self._db.run(lambda c: cluster.schedules_due(c, at))

    async def schedule_record_fire(
        self, *, name: str, fire_time: datetime, next_fire_at: datetime | None
    ) -> bool:
        return await self._db.write(
            lambda c: cluster.schedule_record_fire(c, name, fire_time, next_fire_at)
        )

    # -- leadership --------------------------------------------------------------------------
    async def leader_attempt_elect(
        self, *, name: str, holder: str, ttl: float, now: datetime | None = None
    ) -> bool:
        at = now or utcnow()
        return await self._db.write(lambda c: cluster.leader_elect(c, name, holder, ttl, at))

    async def leader_resign(self, *, name: str, holder: str) -> None:
        await self._db.write(lambda c: cluster.leader_resign(c, name, holder))

    async def leader_get(self, *, name: str, now: datetime | None = None) -> LeaderInfo | None:
        at = now or utcnow()
        return await self._db.run(lambda c: cluster.leader_get(c, name, at))

    # -- workers -----------------------------------------------------------------------------
    async def worker_heartbeat(self, *, info: WorkerInfo) -> None:
        await self._db.write(lambda c: cluster.worker_heartbeat(c, info))

    async def worker_remove(self, *, worker_id: str) -> None:
        await self._db.write(lambda c: cluster.worker_remove(c, worker_id))

    async def workers_list(self) -> list[WorkerInfo]:
        return await self._db.run(cluster.workers_list)

    async def workers_prune(self, *, older_than: datetime) -> int:
        return await self._db.write(lambda c: cluster.workers_prune(c, older_than))

    # -- workflows ---------------------------------------------------------------------------
    async def workflow_enqueue(self, *, workflow: WorkflowDraft, now: datetime | None = None) -> Workflow:
        at = now or utcnow()
        stored = await self._db.write(lambda c: workflows.enqueue(c, workflow, at))
        self._notify()
        return stored

    async def workflow_get(self, *, workflow_id: str) -> Workflow | None:
        return await self._db.read(lambda c: workflows.read(c, workflow_id))

    async def workflows_list(self, *, limit: int = 50, cursor: str | None = None) -> WorkflowPage:
        return await self._db.read(lambda c: workflows.list_page(c, limit, cursor))

    async def workflow_cancel(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        return await self._db.write(lambda c: workflows.cancel(c, workflow_id, now or utcnow()))

    async def workflows_prune(self, *, finished_before: datetime, limit: int = 1000) -> int:
        return await self._db.write(lambda c: workflows.prune(c, finished_before, limit))

    async def workflow_retry(self, *, workflow_id: str, now: datetime | None = None) -> Workflow:
        at = now or utcnow()
        after = await self._db.write(lambda c: workflows.retry(c, workflow_id, at))
        self._notify()
        return after

    # -- wake-ups ----------------------------------------------------------------------------
    async def wait_for_jobs(self, *, queues: Sequence[str] | None, timeout: float) -> None:
        """Return on a local notify, when another connection committed since our last claim
        (`PRAGMA data_version`), or after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wakes = self._wakes
        while True:
            version = await self._db.run(lambda c: c.execute("PRAGMA data_version").fetchone()[0])
            if self._seen_version is None:
                self._seen_version = version
            elif version != self._seen_version:
                self._seen_version = version
                self._poll = _POLL_MIN
                return
            remaining = deadline - loop.time()
            if remaining <= 0 or self._wakes != wakes:
                return
            await self._waker.wait(min(self._poll, remaining))
            if self._wakes != wakes:
                return
            self._poll = min(self._poll * 1.5, _POLL_MAX)
