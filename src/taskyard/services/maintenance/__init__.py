"""Leader-only upkeep: rescue expired leases, promote due jobs, prune old jobs, reap dead workers;
and the leaderless rescuer that runs beside every worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from taskyard.backends.protocol import Backend
from taskyard.clock import Clock
from taskyard.services.base import LeaseHolder
from taskyard.services.maintenance.promoter import Promoter
from taskyard.services.maintenance.pruner import Pruner, Retention
from taskyard.services.maintenance.reaper import Reaper
from taskyard.services.maintenance.rescuer import Rescuer
from taskyard.services.periodic import PeriodicService, PeriodicServiceConfig

__all__ = (
    "MaintenanceConfig",
    "Promoter",
    "Pruner",
    "Reaper",
    "Rescuer",
    "Retention",
    "build_maintenance",
    "build_worker_rescuer",
)


def _default_retention() -> dict[str, Retention]:
    return {
        "completed": Retention(keep_last=1000, max_age=86400.0),
        "failed": Retention(keep_last=5000, max_age=7 * 86400.0),
        "cancelled": Retention(keep_last=1000, max_age=86400.0),
    }


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    """How often each duty runs (seconds) and how long finished jobs are kept, globally and
    per queue."""

    rescue_interval: float = 5.0
    promote_interval: float = 1.0
    prune_interval: float = 60.0
    reap_interval: float = 30.0
    worker_timeout: float = 120.0
    retention: dict[str, Retention] = field(default_factory=_default_retention)
    #: Rules of single queues (queue → status → rule): each replaces the global rule of its
    #: status in its queue, other statuses keep the global rule.
    queue_retention: dict[str, dict[str, Retention]] = field(default_factory=dict)
    #: Seconds a finished workflow is kept after its last step finished (None: kept).
    workflow_retention: float | None = 7 * 86400.0


def build_maintenance(
    backend: Backend,
    leader: LeaseHolder | None,
    config: MaintenanceConfig | None = None,
    *,
    clock: Clock | None = None,
) -> list[PeriodicService]:
    """The four maintenance services, each leader-only, ready to register in a manager."""
    config = config or MaintenanceConfig()

    def every(seconds: float) -> PeriodicServiceConfig:
        # Upkeep keeps trying through a backend outage: failed runs never put it in ERROR.
        return PeriodicServiceConfig(
            interval=seconds, leader_only=True, run_on_start=True, max_consecutive_failures=0
        )

    return [
        Rescuer(backend, config=every(config.rescue_interval), leader=leader, clock=clock),
        Promoter(backend, config=every(config.promote_interval), leader=leader, clock=clock),
        Pruner(
            backend, retention=config.retention, queue_retention=config.queue_retention,
            workflow_retention=config.workflow_retention, config=every(config.prune_interval),
            leader=leader, clock=clock,
        ),
        Reaper(
            backend, worker_timeout=config.worker_timeout, config=every(config.reap_interval),
            leader=leader, clock=clock,
        ),
    ]


def build_worker_rescuer(backend: Backend, interval: float, *, clock: Clock | None = None) -> Rescuer:
    """A `Rescuer` with no leader gate, to run beside a worker: rescue writes are conditional
    (still running, same lease token, still expired), so any number of processes may run
    them, and a dead worker's jobs come back even while leadership is moving (or when the
    dead worker was the leader)."""
    config = PeriodicServiceConfig(
        interval=interval, leader_only=False, run_on_start=True, max_consecutive_failures=0
    )
    return Rescuer(backend, service_id="worker-rescuer", config=config, clock=clock)
