"""The worker: claims and runs jobs (`Worker`, `WorkerConfig`, `JobOutcome`)."""

from taskyard.services.worker.worker import JobOutcome, Worker, WorkerConfig

__all__ = ("JobOutcome", "Worker", "WorkerConfig")
