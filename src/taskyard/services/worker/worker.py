"""The `Worker` service: claims jobs in batches up to its free slots, runs them, hands their
outcomes to its `Completer` (written in batches), renews leases, and drains cleanly on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from taskyard.app import Taskyard
from taskyard.backends.protocol import Backend
from taskyard.clock import Clock
from taskyard.core import ids
from taskyard.core.cluster import WorkerInfo
from taskyard.core.job import Job, JobStatus
from taskyard.errors import BackendUnavailable
from taskyard.services.base import Service
from taskyard.services.store_clock import StoreClock
from taskyard.services.worker.children import ChildPool
from taskyard.services.worker.completer import Completer
from taskyard.services.worker.config import WorkerConfig
from taskyard.services.worker.executor import Outcome, OutcomeKind, execute
from taskyard.services.worker.leases import LeaseKeeper
from taskyard.services.worker.recorder import JobOutcome, Recorder
from taskyard.services.worker.stats import RunStats
from taskyard.services.worker.threads import LostThread, ThreadSlots

__all__ = ("JobOutcome", "Worker", "WorkerConfig")

log = logging.getLogger("taskyard.worker")
#: One line when a job starts (DEBUG) and one when it ends (`WorkerConfig.job_log_level`).
job_log = logging.getLogger("taskyard.jobs")


class Worker(Service):
    """Runs jobs of `config.queues` with up to `config.concurrency` at a time."""

    default_id = "worker"

    def __init__(
        self,
        app: Taskyard,
        config: WorkerConfig | None = None,
        *,
        service_id: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(service_id, clock=clock or app.clock)
        self.app = app
        self.config = config or WorkerConfig()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{ids.new_id()[-8:]}"
        self.in_flight: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Why a run's task was cancelled, by task (one job id may have two runs here at once:
        #: rescued and claimed again by this worker while its last run is still settling).
        self._interrupts: dict[asyncio.Task[None], str] = {}
        self._slot_freed = asyncio.Event()
        self._job_listeners: list[Callable[[JobOutcome], None]] = []
        self._threads: ThreadSlots | None = None
        #: Why this worker recycles itself (stops claiming, drains, hands back), once it does.
        self.recycle_reason: str | None = None
        #: Set when the worker decides to recycle; the task server then restarts the process.
        self.recycled = asyncio.Event()
        #: Child processes for `isolation="process"` jobs (started on demand).
        self.children = ChildPool(
            app, size=self.config.concurrency, max_jobs_per_child=self.config.max_jobs_per_child,
            max_memory_per_child=self.config.max_memory_per_child, memory_limit=self.config.memory_limit,
        )
        self._side_tasks: list[asyncio.Task[None]] = []
        self._started_at = self.clock.now()
        self.leases = LeaseKeeper(self)
        #: Times this worker writes for others to compare (retry times, heartbeats, stats
        #: minutes) follow the store's clock; refreshed with every heartbeat.
        self.store_clock = StoreClock(self.clock)
        #: Per-minute counts of completed and failed runs; the heartbeat writes them.
        self.stats = RunStats(self.store_clock)
        #: Writes every run's outcome (`jobs_settle`), in batches.
        self.completer = Completer(
            lambda: self.app.backend, now=self.store_clock.now, patience=self.config.lease,
            monotonic=self.monotonic,
        )
        #: Turns each run's outcome into its write and reports it once written.
        self.recorder = Recorder(
            app, completer=self.completer, stats=self.stats, store_clock=self.store_clock,
            last_progress=self.leases.last_progress, emit=self._emit_job,
        )

    # -- public ------------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The app's backend, which this worker claims from and writes to."""
        return self.app.backend

    def subscribe_jobs(self, callback: Callable[[JobOutcome], None]) -> Callable[[], None]:
        """Call `callback(JobOutcome)` after every run; returns an unsubscribe function."""
        self._job_listeners.append(callback)
        return lambda: self._job_listeners.remove(callback)

    async def wait_finished(self) -> None:
        """Wait until the main loop has ended (a burst worker's drain, or a stop)."""
        task = self._task
        if task is not None:
            await asyncio.shield(task)

    def info(self) -> WorkerInfo:
        """This worker as the registry shows it."""
        return WorkerInfo(
            id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self.config.queues or ("*",),
            concurrency=self.config.concurrency,
            started_at=self._started_at,
            last_heartbeat=self.store_clock.now(),
            current_jobs=tuple(self.in_flight),
            tasks=tuple(sorted(self.app.tasks)),
            lost_threads=len(self.lost_threads),
        )

    @property
    def lost_threads(self) -> list[LostThread]:
        """Handler threads that would not stop after their job was stopped (still running)."""
        return self._threads.lost if self._threads is not None else []

    @property
    def is_overloaded_by_lost_threads(self) -> bool:
        """True once lost threads reach `max_lost_threads` (never when that is 0)."""
        limit = self.config.max_lost_threads
        return bool(limit) and len(self.lost_threads) >= limit

    def health(self) -> dict[str, Any]:
        """The service's health, unhealthy once lost threads reach the limit, with `details`:
        thread slots, lost threads (with their jobs and tasks) and whether it recycles."""
        health = super().health()
        threads = self._threads.status() if self._threads is not None else {
            "slots": self.config.concurrency, "busy": 0, "stopping": 0, "lost_threads": 0, "lost": [],
            "stopped_total": 0, "lost_total": 0,
        }
        if self.is_overloaded_by_lost_threads or self.recycle_reason is not None:
            health["healthy"] = False
        health["details"] = {
            "in_flight": len(self.in_flight),
            **threads,
            "max_lost_threads": self.config.max_lost_threads,
            "recycling": self.recycle_reason,
        }
        return health

    def recycle(self, reason: str) -> None:
        """Stop claiming, drain in-flight jobs (handing back what does not finish in the drain
        timeout) and end the main loop; `recycled` is set so the task server can restart the
        process. Idempotent; nothing to do once the worker is stopping anyway."""
        if self.recycle_reason is not None or self.stopping.is_set():
            return
        self.recycle_reason = reason
        log.warning("worker %s recycles itself: %s", self.worker_id, reason)
        self.recycled.set()
        self.stopping.set()  # the main loop ends and drains, as on stop
        self._resumed.set()

    def _on_lost_thread(self, lost: LostThread) -> None:
        if self.is_overloaded_by_lost_threads:
            self.recycle(
                f"{len(self.lost_threads)} lost handler thread(s) reached worker.max_lost_threads="
                f"{self.config.max_lost_threads} (last: job {lost.job_id}, task {lost.task})"
            )

    # -- lifecycle ---------------------------------------------------------------------------
    async def on_start(self) -> None:
        await self.app.open()
        with contextlib.suppress(Exception):  # an outage: the heartbeat reads it again
            await self.store_clock.refresh(self.app.backend)
        self._started_at = self.clock.now()
        self._threads = ThreadSlots(
            self.config.concurrency, name=f"taskyard-{self.id}", grace=self.config.stop_grace,
            on_lost=self._on_lost_thread,
        )
        self.completer.start()
        self._side_tasks = [asyncio.create_task(self.leases.run(), name="worker:leases")]

    async def run(self) -> None:
        backend = self.app.backend
        backoff = self.config.poll_interval
        while not self.stopping.is_set():
            await self.wait_resumed()
            if self.stopping.is_set():
                break
            # Bounded by thread slots too: never hold a claimed job no thread can run (a retired
            # thread gives its slot back at once, so this only bites on a bookkeeping bug).
            threads = self._threads.free if self._threads is not None else self.config.concurrency
            free = min(self.config.concurrency - len(self.in_flight), threads)
            if free <= 0:
                await self._wait_slot()
                continue
            written = self.completer.written
            try:
                jobs = await backend.job_claim(
                    queues=self.config.queues,
                    limit=free,
                    worker_id=self.worker_id,
                    lease=self.config.lease,
                    now=self.clock.backend_now(),
                    # Only the tasks this app knows: jobs of other apps or versions stay pending.
                    tasks=tuple(self.app.tasks),
                )
            except BackendUnavailable as exc:
                log.warning("backend unavailable, retrying in %.1fs: %s", backoff, exc)
                if await self.sleep(backoff):
                    break
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = self.config.poll_interval
            for job in jobs:
                self._start_job(job)
            if len(jobs) == free:
                # The claim filled every slot, so more may be due: let the jobs just started run
                # (and finish, if trivial), then claim again — in batches, not one per slot.
                await asyncio.sleep(0)
                continue
            # A short claim means nothing else is due now: wait for a slot or for new work
            # rather than spend a round-trip on a claim that would come back empty.
            if self.in_flight:
                await self._wait_slot_or_work()
            elif self.config.burst:
                if not await self._burst_has_more(written):
                    break
            else:
                await self._wait_work()
        await self._drain()

    async def _wait_work(self) -> None:
        waiter = asyncio.ensure_future(
            self.app.backend.wait_for_jobs(queues=self.config.queues, timeout=self.config.poll_interval)
        )
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait((waiter, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stop.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await waiter

    async def _wait_slot(self) -> None:
        self._slot_freed.clear()
        stop = asyncio.ensure_future(self.stopping.wait())
        freed = asyncio.ensure_future(self._slot_freed.wait())
        try:
            await asyncio.wait((stop, freed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            freed.cancel()

    async def _wait_slot_or_work(self) -> None:
        self._slot_freed.clear()
        freed = asyncio.ensure_future(self._slot_freed.wait())
        work = asyncio.ensure_future(self._wait_work())
        try:
            await asyncio.wait((freed, work), return_when=asyncio.FIRST_COMPLETED)
        finally:
            freed.cancel()
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work

    async def _burst_has_more(self, written: int) -> bool:
        """In burst mode: wait for retries this worker scheduled; False when none is left.
        True when outcomes were written since the last claim (`written` then): settling a
        workflow step may have made its children due."""
        await self.completer.flush()
        if self.completer.written != written:
            return True
        if not self.config.burst_wait_retries:
            return False
        while self.recorder.retry_watch and not self.stopping.is_set():
            backend = self.app.backend
            for job_id in list(self.recorder.retry_watch):
                job = await backend.job_get(job_id=job_id)
                if job is None or job.status is not JobStatus.SCHEDULED:
                    self.recorder.retry_watch.pop(job_id, None)
            if not self.recorder.retry_watch:
                return True  # they became pending or ran elsewhere: claim again
            wait = (min(self.recorder.retry_watch.values()) - self.store_clock.now()).total_seconds()
            if wait <= 0:
                return True
            if await self.sleep(min(wait, self.config.poll_interval)):
                return False
        return bool(self.recorder.retry_watch)

    async def _drain(self) -> None:
        """Stop claiming; let in-flight jobs finish within the drain timeout; hand back the rest."""
        if self._tasks:
            log.info(
                "draining %d in-flight job(s) (up to %.0fs)", len(self._tasks), self.config.drain_timeout
            )
            _, pending = await asyncio.wait(
                list(self._tasks.values()), timeout=self.config.drain_timeout
            )
            for task in list(self._tasks.values()):
                if task in pending:
                    self._interrupts[task] = "released"
                    task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def on_stop(self) -> None:
        await self.completer.stop()  # every outcome recorded before the worker is gone
        for task in self._side_tasks:
            task.cancel()
        for task in self._side_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._side_tasks = []
        await self.stats.flush(self.app.backend)
        with contextlib.suppress(Exception):
            await self.app.backend.worker_remove(worker_id=self.worker_id)
        await self.children.close()
        if self._threads is not None:
            # Stopping and lost handler threads are daemons: they end with the process.
            await self._threads.close()

    # -- running jobs ------------------------------------------------------------------------
    def _start_job(self, job: Job) -> None:
        # The job's previous run may still be settling here (its child died or its lease was
        # lost, the job was rescued and this worker claimed it again at once): the new run
        # waits for it, and each run removes only its own bookkeeping.
        previous = self._tasks.get(job.id)
        self.stats.started(job)
        self.in_flight[job.id] = job
        self._tasks[job.id] = asyncio.create_task(self._run_job(job, after=previous), name=f"job:{job.id}")

    def interrupt(self, job_id: str, why: str) -> None:
        """Stop a running job's handler: `why` is "cancelled" (requested) or "lost"."""
        task = self._tasks.get(job_id)
        if task is not None and not task.done() and task not in self._interrupts:
            self._interrupts[task] = why
            task.cancel()

    async def _run_job(self, job: Job, after: asyncio.Task[None] | None = None) -> None:
        me = asyncio.current_task()
        if after is not None and not after.done():
            await asyncio.wait({after})
        started = self.monotonic()
        assert self._threads is not None
        if self.config.job_log_level is not None:
            self._log_job(logging.DEBUG, job, "started")
        try:
            try:
                if self.children.wants(job, self.config.isolation):
                    outcome = await self.children.run(job, report_progress=self.leases.report_progress)
                else:
                    outcome = await execute(
                        self.app, job, report_progress=self.leases.report_progress, threads=self._threads
                    )
            except asyncio.CancelledError:
                why = self._interrupts.get(me) if me is not None else None
                if why is None:
                    raise
                outcome = Outcome(OutcomeKind(why), reason=f"{why} while running")
            await self.recorder.record(job, outcome, self.monotonic() - started)
        except Exception:
            log.exception("could not record the outcome of job %s", job.id, extra={"job_id": job.id})
        finally:
            if self.in_flight.get(job.id) is job:
                self.in_flight.pop(job.id)
                self.leases.forget(job.id)
            if me is not None:
                if self._tasks.get(job.id) is me:
                    self._tasks.pop(job.id)
                self._interrupts.pop(me, None)
            self._slot_freed.set()

    # -- outcomes ---------------------------------------------------------------------
    def _log_job(self, level: int, job: Job, outcome: str, duration: float | None = None) -> None:
        """The structured line of a job's start (`outcome="started"`) or end: ids, task,
        queue, attempt, outcome, duration; never its payload or result."""
        if not job_log.isEnabledFor(level):
            return
        took = "" if duration is None else f" in {duration:.3f}s"
        job_log.log(
            level, "job %s %s (%s, attempt %d, queue %s)%s", job.id, outcome, job.task, job.attempt,
            job.queue, took,
            extra={
                "event": "job.started" if duration is None else "job.finished",
                "job_id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempt,
                "outcome": outcome, "duration": None if duration is None else round(duration, 6),
                "worker_id": self.worker_id,
            },
        )

    def _emit_job(self, job: Job, outcome: str, duration: float) -> None:
        # Job runs are too frequent to be service events; listeners use subscribe_jobs.
        if self.config.job_log_level is not None:
            self._log_job(self.config.job_log_level, job, outcome, duration)
        self.record_run(
            ok=outcome in ("completed", "snoozed", "released"),
            duration=duration,
            error=None if outcome == "completed" else f"job {job.id} {outcome}",
            emit=False,
        )
        if self._job_listeners:
            event = JobOutcome(job=job, outcome=outcome, duration=duration)
            for listener in list(self._job_listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("job outcome listener failed")
