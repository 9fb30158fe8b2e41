"""`WorkerConfig`: how a worker claims and runs jobs (validated when built)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from taskyard.core.names import check_name

__all__ = ("WorkerConfig",)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a worker claims and runs jobs.

    `queues` None means every queue. `lease` is how long a claim holds a job without a
    heartbeat; heartbeats come every `min(lease / 3, heartbeat_interval)` seconds.
    `drain_timeout` is how long `stop()` lets in-flight jobs finish before handing them back.
    `burst` makes the worker stop by itself once nothing is due and nothing runs; with
    `burst_wait_retries` it first waits for the retries it scheduled itself to come due.
    `stop_grace` is how long a stopped sync handler's thread gets to end (an exception is
    raised in it meanwhile) before it counts as lost; at `max_lost_threads` lost threads the
    worker recycles itself (0: never).
    `isolation` "task" runs each job as its task says, "process" every job in a child
    process; children serve `max_jobs_per_child` jobs, are replaced once past
    `max_memory_per_child` MB, and kill a job past `memory_limit` MB (tasks without their own).
    `job_log_level` is the level of the line logged when a job ends (its start is logged at
    DEBUG, or not at all when this is None); neither carries payloads or results.
    """

    queues: tuple[str, ...] | None = None
    concurrency: int = 10
    lease: float = 60.0
    heartbeat_interval: float = 5.0
    poll_interval: float = 1.0
    drain_timeout: float = 30.0
    burst: bool = False
    burst_wait_retries: bool = True
    stop_grace: float = 5.0
    max_lost_threads: int = 3
    isolation: str = "task"
    max_jobs_per_child: int = 1000
    max_memory_per_child: float | None = None
    memory_limit: float | None = None
    job_log_level: int | None = logging.INFO

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("worker concurrency must be at least 1")
        if self.lease <= 0 or self.poll_interval <= 0 or self.heartbeat_interval <= 0:
            raise ValueError("worker lease, poll_interval and heartbeat_interval must be > 0")
        if self.drain_timeout < 0:
            raise ValueError("worker drain_timeout must be >= 0")
        if self.stop_grace < 0 or self.max_lost_threads < 0:
            raise ValueError("worker stop_grace and max_lost_threads must be >= 0")
        for queue in self.queues or ():
            check_name("worker queue name", queue)
        if self.isolation not in ("task", "process"):
            raise ValueError(f"worker isolation must be 'task' or 'process', not {self.isolation!r}")
        if self.max_jobs_per_child < 1:
            raise ValueError("worker max_jobs_per_child must be at least 1")
        for name in ("max_memory_per_child", "memory_limit"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"worker {name} must be > 0 MB (or None for no limit)")
