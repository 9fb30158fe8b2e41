"""`ServerMetrics`: the Prometheus metrics of one task server, in a registry of its own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from taskyard.services.base import ServiceStatus

__all__ = ("CONTENT_TYPE", "ServerMetrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ServerMetrics:
    """Counters fed by events (enqueues, job outcomes, service runs) and gauges set at
    scrape time (queue depth, service status, workers); `render()` is the /metrics body."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        job_labels = ("queue", "task")
        self.jobs_enqueued = Counter(
            "taskyard_jobs_enqueued", "Jobs enqueued by this process.", job_labels, registry=r
        )
        self.jobs_completed = Counter(
            "taskyard_jobs_completed", "Jobs this process ran to completion.", job_labels, registry=r
        )
        self.jobs_failed = Counter(
            "taskyard_jobs_failed", "Jobs that failed for good in this process.", job_labels, registry=r
        )
        self.jobs_retried = Counter(
            "taskyard_jobs_retried", "Failed attempts that were scheduled to retry.", job_labels, registry=r
        )
        self.job_runs = Counter(
            "taskyard_job_runs", "Job runs by outcome.", (*job_labels, "outcome"), registry=r
        )
        self.job_duration = Histogram(
            "taskyard_job_duration_seconds", "Wall time of job runs.", job_labels,
            buckets=_DURATION_BUCKETS, registry=r,
        )
        self.queue_jobs = Gauge(
            "taskyard_queue_jobs", "Jobs per queue and status (read at scrape time).",
            ("queue", "status"), registry=r,
        )
        self.service_status = Gauge(
            "taskyard_service_status", "1 for the status each service is in, 0 for the others.",
            ("service", "status"), registry=r,
        )
        self.service_runs = Counter(
            "taskyard_service_runs", "Runs of services by outcome.", ("service", "outcome"), registry=r
        )
        self.service_run_duration = Histogram(
            "taskyard_service_run_duration_seconds", "Wall time of service runs.", ("service",),
            buckets=_DURATION_BUCKETS, registry=r,
        )
        self.service_restarts = Gauge(
            "taskyard_service_restarts", "Restarts of each service by the manager.", ("service",), registry=r
        )
        self.workers = Gauge("taskyard_workers", "Live workers registered in the backend.", registry=r)
        self.in_flight = Gauge("taskyard_jobs_in_flight", "Jobs running in this process.", registry=r)
        self.lost_threads = Gauge(
            "taskyard_worker_lost_threads",
            "Handler threads of this process's worker that would not stop after their job was stopped.",
            registry=r,
        )
        self.backend_up = Gauge("taskyard_backend_up", "1 when the backend answered the last scrape.", registry=r)

    # -- events ------------------------------------------------------------------------------
    def job_enqueued(self, queue: str, task: str, count: int = 1) -> None:
        """Count enqueued jobs."""
        self.jobs_enqueued.labels(queue, task).inc(count)

    def job_finished(self, queue: str, task: str, outcome: str, duration: float) -> None:
        """Count one run of a job and its duration; `outcome` is the worker's word for it."""
        self.job_runs.labels(queue, task, outcome).inc()
        self.job_duration.labels(queue, task).observe(max(duration, 0.0))
        if outcome == "completed":
            self.jobs_completed.labels(queue, task).inc()
        elif outcome == "failed":
            self.jobs_failed.labels(queue, task).inc()
        elif outcome == "retrying":
            self.jobs_retried.labels(queue, task).inc()

    def service_run(self, service: str, ok: bool, duration: float | None) -> None:
        """Count one run of a service."""
        self.service_runs.labels(service, "success" if ok else "failure").inc()
        if duration is not None:
            self.service_run_duration.labels(service).observe(max(duration, 0.0))

    # -- scrape-time gauges ------------------------------------------------------------------
    def set_queue_depth(self, rows: Iterable[tuple[str, Mapping[str, int]]]) -> None:
        """Replace the per-queue counts with `(queue, {status: count})` rows."""
        self.queue_jobs.clear()
        for queue, counts in rows:
            for status, count in counts.items():
                self.queue_jobs.labels(queue, status).set(count)

    def set_services(self, statuses: Mapping[str, str], restarts: Mapping[str, int]) -> None:
        """Set the status gauge (one series per service and status) and restart counts."""
        self.service_status.clear()
        self.service_restarts.clear()
        for service, current in statuses.items():
            for status in ServiceStatus:
                self.service_status.labels(service, status.value).set(1 if status == current else 0)
            self.service_restarts.labels(service).set(restarts.get(service, 0))

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
