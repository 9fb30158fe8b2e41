"""`MetricsFeed`: feeds a server's `ServerMetrics` from the app's enqueues, the worker's job
outcomes and the manager's service events (no HTTP needed: a worker without an HTTP server
counts too)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from taskyard.app import Taskyard
from taskyard.core.job import Job
from taskyard.observability.metrics import ServerMetrics
from taskyard.services.base import ServiceEvent
from taskyard.services.manager import ServiceManager
from taskyard.services.worker import JobOutcome, Worker

__all__ = ("MetricsFeed",)


class MetricsFeed:
    """Subscribes `metrics` to its sources; `close()` unsubscribes everything."""

    def __init__(
        self,
        metrics: ServerMetrics,
        *,
        app: Taskyard,
        manager: ServiceManager | None = None,
        worker: Worker | None = None,
    ) -> None:
        self.metrics = metrics
        self._undo: list[Callable[[], None]] = []
        app.enqueue_listeners.append(self._on_enqueue)
        self._undo.append(lambda: app.enqueue_listeners.remove(self._on_enqueue))
        if worker is not None:
            self._undo.append(worker.subscribe_jobs(self._on_job))
        if manager is not None:
            self._undo.append(manager.subscribe(self._on_service))

    def _on_enqueue(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self.metrics.job_enqueued(job.queue, job.task)

    def _on_job(self, outcome: JobOutcome) -> None:
        self.metrics.job_finished(outcome.job.queue, outcome.job.task, outcome.outcome, outcome.duration)

    def _on_service(self, event: ServiceEvent) -> None:
        if event.kind == "run" and event.ok is not None:
            self.metrics.service_run(event.service_id, event.ok, event.duration)

    def close(self) -> None:
        """Stop listening."""
        for undo in self._undo:
            with contextlib.suppress(ValueError):  # already removed
                undo()
        self._undo = []
