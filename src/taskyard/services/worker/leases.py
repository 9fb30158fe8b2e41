"""`LeaseKeeper`: the worker's heartbeat — renews the leases of in-flight jobs, writes progress,
stops handlers whose job was cancelled or lost, refreshes the worker registry and flushes stats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from taskyard.core.job import Job, Progress
from taskyard.errors import LeaseLost

if TYPE_CHECKING:
    from taskyard.backends.protocol import Backend
    from taskyard.clock import Clock
    from taskyard.core.cluster import WorkerInfo
    from taskyard.services.store_clock import StoreClock
    from taskyard.services.worker.config import WorkerConfig
    from taskyard.services.worker.stats import RunStats

__all__ = ("LeaseHolder", "LeaseKeeper", "raise_if_cancelling")

log = logging.getLogger("taskyard.worker")


def raise_if_cancelling(exc: BaseException | None = None) -> None:
    """Raise `CancelledError` when this task was asked to stop. A driver may swallow the
    cancellation of the task running its query (the PostgreSQL pool does, or turns it into an
    error): a side task that carries on after a write must check, or the worker's stop waits
    for it forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


class LeaseHolder(Protocol):
    """What the lease keeper reads and calls on its worker (a `Worker`)."""

    @property
    def config(self) -> WorkerConfig:
        """The worker's settings (`lease`, `heartbeat_interval`)."""
        ...

    @property
    def backend(self) -> Backend:
        """The store the worker claims from."""
        ...

    @property
    def clock(self) -> Clock:
        """The worker's clock (sleeps; a fake clock's `backend_now`)."""
        ...

    @property
    def store_clock(self) -> StoreClock:
        """The store's clock as the worker last read it; the heartbeat refreshes it."""
        ...

    @property
    def in_flight(self) -> Mapping[str, Job]:
        """The jobs the worker runs now, by id (their lease tokens are renewed)."""
        ...

    def interrupt(self, job_id: str, why: str) -> None:
        """Stop a running job whose lease was lost or which was cancelled."""
        ...

    def info(self) -> WorkerInfo:
        """What the worker registry records about this worker."""
        ...

    @property
    def stats(self) -> RunStats:
        """The worker's per-minute run counts; each heartbeat writes them."""
        ...


class LeaseKeeper:
    """Owned by one `Worker`; its `run()` is one of the worker's side tasks."""

    def __init__(self, worker: LeaseHolder) -> None:
        self.worker = worker
        self._progress: dict[str, Progress] = {}  # reported, not yet written
        self._last: dict[str, Progress] = {}  # the latest report of each running job
        self._progress_ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def interval(self) -> float:
        config = self.worker.config
        return min(config.lease / 3, config.heartbeat_interval)

    def report_progress(self, job_id: str, progress: Progress) -> None:
        """Remember the latest progress of a job; written soon. Safe from handler threads."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop:
            loop.call_soon_threadsafe(self.report_progress, job_id, progress)
            return
        self._progress[job_id] = progress
        self._last[job_id] = progress
        self._progress_ready.set()

    def last_progress(self, job_id: str) -> Progress | None:
        """The latest progress the job reported (written or not), to store with its completion:
        a report coalesced into a later write would find the job finished and be refused."""
        return self._last.get(job_id)

    def forget(self, job_id: str) -> None:
        """The job has finished; drop its unwritten progress."""
        self._progress.pop(job_id, None)
        self._last.pop(job_id, None)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        progress_task = asyncio.create_task(self._progress_loop(), name="worker:progress")
        try:
            while True:
                await self.beat()
                raise_if_cancelling()
                await self.worker.clock.sleep(self.interval)
        finally:
            progress_task.cancel()

    async def beat(self) -> None:
        """One heartbeat."""
        worker = self.worker
        backend = worker.backend
        leases = {job_id: job.lease_token or "" for job_id, job in worker.in_flight.items()}
        try:
            if leases:
                report = await backend.jobs_extend_leases(
                    leases=leases, lease=worker.config.lease, now=worker.clock.backend_now()
                )
                for job_id in report.lost:
                    log.warning("lease of job %s was lost; stopping it", job_id, extra={"job_id": job_id})
                    worker.interrupt(job_id, "lost")
                for job_id in report.cancel_requested:
                    log.info("job %s was cancelled; stopping it", job_id, extra={"job_id": job_id})
                    worker.interrupt(job_id, "cancelled")
            await worker.store_clock.refresh(backend)  # after the renewal, which cannot wait
            await backend.worker_heartbeat(info=worker.info())
            await worker.stats.flush(backend)
        except Exception as exc:  # an outage must not kill the heartbeat
            raise_if_cancelling(exc)
            log.warning("heartbeat failed: %s", exc)

    async def _progress_loop(self) -> None:
        backend = self.worker.backend
        while True:
            await self._progress_ready.wait()
            self._progress_ready.clear()
            pending, self._progress = self._progress, {}
            for job_id, progress in pending.items():
                job = self.worker.in_flight.get(job_id)
                if job is None:
                    continue
                try:
                    await backend.job_set_progress(
                        job_id=job_id, lease_token=job.lease_token or "", progress=progress,
                        now=self.worker.store_clock.now(),
                    )
                except LeaseLost:
                    pass
                except Exception as exc:
                    log.warning("could not record progress of job %s: %s", job_id, exc)
            # Coalesce bursts of progress reports into a few writes per second.
            await asyncio.sleep(0.1)
