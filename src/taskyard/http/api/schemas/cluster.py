"""API bodies of the cluster: services and their leases, leaders, alerts, workers, tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
)

from taskyard.core.cluster import WorkerInfo
from taskyard.core.coverage import TaskCoverage
from taskyard.services.base import ServiceStatus

__all__ = (
    "AlertOut",
    "AlertsOut",
    "LeaderOut",
    "LeaseOut",
    "ServiceOut",
    "TaskOut",
    "WorkerOut",
)


class LeaseOut(BaseModel):
    """The leadership lease a leader-only service competes for, and whether this process
    leads it now."""

    name: str
    leader: bool


class LeaderOut(BaseModel):
    """Who holds one leadership lease right now (`holder` null while nobody leads it)."""

    lease: str
    holder: str | None
    host: str | None
    pid: int | None
    elected_at: datetime | None
    expires_at: datetime | None
    #: This process competes for the lease (it runs the duty) and holds it now.
    runs_here: bool
    leads_here: bool


class ServiceOut(BaseModel):
    """A managed service with its status and run metrics."""

    id: str
    name: str
    status: ServiceStatus
    error: str | None
    critical: bool
    auto_start: bool
    #: Restarts the manager made: after failures (critical services) or on request.
    restarts: int
    #: Restarts after failures in the current series (it gives up at `manager.max_restarts`).
    restarts_in_row: int = 0
    #: True once the restart budget (`manager.max_restarts`) is spent: it stays in ERROR.
    gave_up: bool = False
    periodic: bool
    pausable: bool
    stoppable: bool
    lease: LeaseOut | None = None
    metrics: dict[str, Any]


class AlertOut(BaseModel):
    """One alert instance: a rule and its subject (queue, service or schedule labels)."""

    name: str
    kind: str
    state: Literal["ok", "pending", "firing", "resolved"]
    labels: dict[str, str]
    value: float | None
    threshold: float | None
    since: datetime | None
    started_at: datetime | None
    resolved_at: datetime | None
    evaluated_at: datetime | None


class AlertsOut(BaseModel):
    """The alerts as this process's alerter sees them. Alerts are evaluated on the elected
    leader only: `evaluated_here` is false in any other process, whose list is not current."""

    evaluated_here: bool
    alerts: list[AlertOut]


class WorkerOut(BaseModel):
    """A registered worker process and the jobs it is running."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    last_heartbeat: datetime
    current_jobs: list[str]
    tasks: list[str] = Field(description="Task names this worker runs (it claims only these).")
    lost_threads: int = Field(
        0, description="Handler threads that would not stop after their job was stopped (still running)."
    )

    @classmethod
    def of(cls, info: WorkerInfo) -> WorkerOut:
        """From the backend's registry entry."""
        return cls(
            id=info.id,
            host=info.host,
            pid=info.pid,
            queues=list(info.queues),
            concurrency=info.concurrency,
            started_at=info.started_at,
            last_heartbeat=info.last_heartbeat,
            current_jobs=list(info.current_jobs),
            tasks=list(info.tasks),
            lost_threads=info.lost_threads,
        )


class TaskOut(BaseModel):
    """A task name seen in active jobs or on live workers: its jobs, and who can run them."""

    task: str
    pending: int
    scheduled: int
    running: int
    waiting_since: datetime | None = Field(
        description="run_at of its oldest due job (pending, or scheduled and due); null if none"
    )
    queues: list[str] = Field(description="Queues holding its active jobs.")
    workers: list[str] = Field(description="Ids of the live workers that know the task.")
    unclaimable: bool = Field(
        description="Jobs wait (pending or scheduled) and no live worker knows the task: "
        "they stay pending until a worker that registers it starts."
    )

    @classmethod
    def of(cls, coverage: TaskCoverage) -> TaskOut:
        """From the core's coverage of one task."""
        return cls(
            task=coverage.task,
            pending=coverage.pending,
            scheduled=coverage.scheduled,
            running=coverage.running,
            waiting_since=coverage.waiting_since,
            queues=list(coverage.queues),
            workers=list(coverage.workers),
            unclaimable=coverage.is_unclaimable,
        )
