"""`TaskServer`: the composition root — settings → backend → leader, worker, scheduler,
maintenance, user services and HTTP → one `ServiceManager`. Beside it: `signals` (SIGTERM/SIGINT
drain the worker, release leadership and exit 0), `user_services`, `devrun` (credentials of a
development run).
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from taskyard.app import Taskyard
from taskyard.clock import Clock
from taskyard.config import Settings, redact_url
from taskyard.errors import ConfigError
from taskyard.observability import ServerMetrics, configure_logging
from taskyard.observability.feed import MetricsFeed
from taskyard.server.devrun import (
    DEV_SECRET_FILE,
    DEV_TOKEN_FILE,
    publish_dev_token,
    shared_dev_secret,
    with_dev_credentials,
)
from taskyard.server.signals import run_until_signalled
from taskyard.server.user_services import build_user_service, user_services
from taskyard.services.alerts import build_alerter
from taskyard.services.leader import LeaderElector, service_lease
from taskyard.services.maintenance import (
    MaintenanceConfig,
    Retention,
    build_maintenance,
    build_worker_rescuer,
)
from taskyard.services.manager import RestartPolicy, ServiceManager
from taskyard.services.periodic import PeriodicService
from taskyard.services.scheduler import Scheduler, SchedulerConfig
from taskyard.services.worker import Worker, WorkerConfig

if TYPE_CHECKING:  # HTTP (FastAPI, the dashboard) is imported only by a process that serves it
    from taskyard.http.context import HttpContext
    from taskyard.http.service import HttpService

__all__ = (
    "DEV_SECRET_FILE",
    "DEV_TOKEN_FILE",
    "ROLES",
    "TaskServer",
    "build_user_service",
    "setup_logging",
    "shared_dev_secret",
)

log = logging.getLogger("taskyard.server")

#: What a process can do; `--only` picks a subset (the default is all of them).
ROLES = ("worker", "scheduler", "maintenance", "api", "services")

def setup_logging(settings: Settings) -> None:
    """Configure logging from `[logging]`, redacting the secrets the settings hold."""
    secrets = [k.key.get_secret_value() for k in settings.http.api_keys]
    if settings.http.jwt_secret is not None:
        secrets.append(settings.http.jwt_secret.get_secret_value())
    configure_logging(settings.logging.level, settings.logging.format, secrets=secrets)


def parse_roles(only: str | Iterable[str] | None) -> frozenset[str]:
    """`"worker,scheduler"` → the roles; unknown names are a `ConfigError` with a hint."""
    if only is None:
        return frozenset(ROLES)
    names = [r.strip() for r in (only.split(",") if isinstance(only, str) else only) if r.strip()]
    if not names:
        raise ConfigError(f"--only: no role given; choose from {', '.join(ROLES)}")
    for name in names:
        if name not in ROLES:
            close = difflib.get_close_matches(name, ROLES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; choose from {', '.join(ROLES)}"
            raise ConfigError(f"--only: unknown role {name!r}{hint}")
    return frozenset(names)


def _job_log_level(setting: str) -> int | None:
    """`logging.jobs` as a level for the worker (None: no line per job)."""
    return None if setting == "OFF" else logging.getLevelNamesMapping()[setting]


class TaskServer:
    """One taskyard process: the services its roles call for, under one manager, with HTTP.

    `only` limits the roles (see `ROLES`); `queues` overrides `worker.queues`; `service`
    runs that one user service alone (with the health endpoints). `build()` raises
    `ConfigError` for anything misconfigured, before anything starts.
    """

    def __init__(
        self,
        app: Taskyard,
        settings: Settings,
        *,
        only: str | Iterable[str] | None = None,
        queues: Iterable[str] | None = None,
        service: str | None = None,
        burst: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.app = app
        self.burst = burst
        self.settings = settings
        self.roles = parse_roles(only) if service is None else frozenset({"services"})
        if service is not None and only is not None:
            raise ConfigError("--service runs one user service alone; it cannot be combined with --only")
        self.only_service = service
        self.queues = tuple(queues) if queues is not None else None
        self.clock = clock or app.clock
        m = settings.manager
        self.manager = ServiceManager(
            self.clock,
            restart=RestartPolicy(
                initial_delay=m.restart_initial_delay, max_delay=m.restart_max_delay,
                max_restarts=m.max_restarts,
            ),
            auto_restart=m.auto_restart,
            stop_timeout=m.stop_timeout,
        )
        self.metrics = ServerMetrics()
        #: The leader electors of this process, by lease name (one lease per leader-only duty).
        self.leaders: dict[str, LeaderElector] = {}
        self.worker: Worker | None = None
        self.http: HttpService | None = None
        self.context: HttpContext | None = None
        self._feed: MetricsFeed | None = None
        self._built = False
        #: The admin token of a development run, set once its HTTP server serves.
        self.dev_token: str | None = None
        self._dev_run = False
        #: Set when the worker recycled itself (lost threads): the server stopped, and the
        #: command that started the process should start it again (`taskyard run`/`worker` do).
        self.recycle_reason: str | None = None

    # -- composition -------------------------------------------------------------------------
    def build(self) -> None:
        """Create and register every service of this process (idempotent)."""
        if self._built:
            return
        s = self.settings
        if "backend" in s.model_fields_set:
            # taskyard.toml, the environment or a flag chose the backend: the app runs on it
            # (a ConfigError if the app already built another).
            self.app.use_backend(s.backend)
        user_svcs = user_services(
            self.app, self.settings.services, only_service=self.only_service, with_all="services" in self.roles
        )
        if s.http.enabled:
            from taskyard.http.auth import check_bind

            check_bind(s.http.host, s.http.auth_enabled)
            if "api" in self.roles and (dev := with_dev_credentials(s)) is not None:
                s = self.settings = dev
                self._dev_run = True
        # HTTP first: it answers /health while the rest starts and /ready (503) while it drains.
        if s.http.enabled:
            from taskyard.http.asgi import create_asgi_app
            from taskyard.http.context import HttpContext
            from taskyard.http.service import HttpService

            self.context = HttpContext(
                self.app, self.manager, s, metrics=self.metrics, mount_api="api" in self.roles
            )
            if self._dev_run:
                self.context.dev_token_file = DEV_TOKEN_FILE
            self.http = HttpService(create_asgi_app(self.context), host=s.http.host, port=s.http.port)
            self.manager.register("http", self.http, name="HTTP server", critical=True)
        if "maintenance" in self.roles:
            leader = self._register_elector(self._elector("maintenance"), "maintenance")
            for duty in build_maintenance(self.app.backend, leader, self._maintenance_config(), clock=self.clock):
                self.manager.register(duty.id, duty, critical=True, depends_on=(leader.id,))
            alert_leader = self._elector("alerter")
            alerter = build_alerter(
                self.app.backend, s.alerts, code_rules=self.app.alert_rules, leader=alert_leader,
                manager=self.manager, clock=self.clock,
            )
            if alerter is not None:
                self._register_elector(alert_leader, "the alerter")
                self.manager.register(
                    alerter.id, alerter, name="Alerter", critical=True, depends_on=(alert_leader.id,)
                )
        if "scheduler" in self.roles:
            self._register_scheduler()
        if "worker" in self.roles:
            self.worker = Worker(self.app, self._worker_config(), clock=self.clock)
            if self.context is not None:
                self.context.worker = self.worker
            # The worker's own stop drains for drain_timeout, then hands back what is left.
            self.manager.register(
                "worker", self.worker, name="Worker", critical=True,
                stop_timeout=s.worker.drain_timeout + min(s.worker.lease, 30.0),
            )
            # Rescue needs no leader: a dead worker's jobs come back even while leadership moves.
            rescuer = build_worker_rescuer(self.app.backend, s.maintenance.rescue_interval, clock=self.clock)
            self.manager.register(rescuer.id, rescuer, name="Rescuer (worker)", critical=True)
        for spec, svc in user_svcs:
            depends_on = spec.depends_on if self.only_service is None else ()
            if isinstance(svc, PeriodicService) and svc.config.leader_only and svc.leader is None:
                # A lease of its own: exactly one replica of this service runs its ticks, in
                # whichever processes run it (not only where the scheduler leads).
                elector = self._register_elector(self._elector(spec.id, lease=service_lease(spec.id)), spec.name)
                svc.leader = elector
                depends_on = (*depends_on, elector.id)
            self.manager.register(
                spec.id, svc, name=spec.name, critical=spec.critical,
                auto_start=spec.auto_start or spec.id == self.only_service,
                depends_on=depends_on,
            )
        if self.context is not None and self.context.mount_api:
            # Listed last: it only feeds the dashboard's queue-depth chart (in the store).
            from taskyard.http.dashboard.sampler import DepthSampler

            sampler = DepthSampler(self.app, clock=self.clock)
            self.manager.register(sampler.id, sampler, name="Queue depth sampler")
        self.manager.services()  # unknown dependencies and cycles fail here, before any start
        self._built = True

    def _worker_config(self) -> WorkerConfig:
        w = self.settings.worker
        queues = self.queues if self.queues is not None else (tuple(w.queues) if w.queues else None)
        try:
            return WorkerConfig(
                queues=queues, concurrency=w.concurrency, lease=w.lease,
                heartbeat_interval=w.heartbeat_interval, poll_interval=w.poll_interval,
                drain_timeout=w.drain_timeout, burst=self.burst, stop_grace=w.stop_grace,
                max_lost_threads=w.max_lost_threads, isolation=w.isolation,
                max_jobs_per_child=w.max_jobs_per_child, max_memory_per_child=w.max_memory_per_child,
                memory_limit=w.memory_limit,
                job_log_level=_job_log_level(self.settings.logging.jobs),
            )
        except ValueError as exc:
            raise ConfigError(f"invalid setting 'worker': {exc}") from None

    def _maintenance_config(self) -> MaintenanceConfig:
        m = self.settings.maintenance
        return MaintenanceConfig(
            rescue_interval=m.rescue_interval, promote_interval=m.promote_interval,
            prune_interval=m.prune_interval, reap_interval=m.reap_interval,
            worker_timeout=m.worker_timeout,
            retention={
                status: Retention(keep_last=rule.keep_last, max_age=rule.max_age)
                for status, rule in m.retention.rules().items()
            },
            queue_retention=self._queue_retention(),
            workflow_retention=m.workflow_retention,
        )

    def _queue_retention(self) -> dict[str, dict[str, Retention]]:
        """Per-queue retention: the app's `app.queue(..., retention=...)`, each status's rule
        replaced by the `[maintenance.retention.queues]` setting of that queue when present."""
        merged: dict[str, dict[str, Retention]] = {
            queue: {status.value: rule for status, rule in rules.items()}
            for queue, rules in self.app.queue_retention.items()
        }
        for queue, section in self.settings.maintenance.retention.queues.items():
            for status, rule in section.rules().items():
                merged.setdefault(queue, {})[status] = Retention(keep_last=rule.keep_last, max_age=rule.max_age)
        return merged

    def _elector(self, duty: str, *, lease: str | None = None) -> LeaderElector:
        """The elector of `duty`'s own lease (named `lease`, default the duty): a process
        competes only for the leases of the duties it runs, so a worker taking part in
        maintenance can never hold the lease the scheduler needs."""
        return LeaderElector(
            self.app.backend, name=lease or duty, ttl=self.settings.scheduler.leader_ttl,
            clock=self.clock, service_id=f"leader:{duty}",
        )

    def _register_elector(self, elector: LeaderElector, what: str) -> LeaderElector:
        self.manager.register(elector.id, elector, name=f"Leader election for {what}", critical=True)
        self.leaders[elector.lease_name] = elector
        return elector

    def _register_scheduler(self) -> None:
        config = SchedulerConfig(
            tick_interval=self.settings.scheduler.tick_interval,
            declared_grace=self.settings.scheduler.declared_grace,
        )
        leader = self._register_elector(self._elector("scheduler"), "the scheduler")
        scheduler = Scheduler(self.app, leader, config=config)
        self.manager.register("scheduler", scheduler, name="Scheduler", critical=True, depends_on=(leader.id,))

    # -- running -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the backend and start every service. Raises `ConfigError` (one line) when the
        backend cannot be reached or the HTTP port cannot be bound."""
        self.build()
        try:
            await self.app.open()
            await self.app.backend.ping()
            for warning in await self.app.backend.server_check():
                log.warning("%s", warning)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"invalid setting 'backend': cannot reach {redact_url(self.app.backend.url)}: "
                f"{type(exc).__name__}: {exc}".splitlines()[0]
            ) from None
        await self.app.aapply_queue_specs()
        if self.http is not None:
            self.http.bind()
        self._feed = MetricsFeed(self.metrics, app=self.app, manager=self.manager, worker=self.worker)
        await self.manager.start_all()
        if self._dev_run and self.http is not None:
            # Only now: a process that serves nothing hands out no token.
            port = self.http.bound_port or self.settings.http.port
            self.dev_token = publish_dev_token(self.settings.http, now=self.clock.now(), port=port)
        log.info(
            "task server started: %s",
            ", ".join(f"{e.id}={e.service.status.value}" for e in self.manager.services()),
        )

    async def stop(self) -> None:
        """Drain and stop everything (reverse order), release leadership, close the backend."""
        if self.context is not None:
            self.context.draining = True
        await self.manager.stop_all()
        if self._feed is not None:
            self._feed.close()
            self._feed = None
        await self.app.aclose()
        log.info("task server stopped")

    async def run(self, stop: asyncio.Event) -> None:
        """Start, wait for `stop` (or, in burst mode, for the worker to run out of work, or for
        the worker to recycle itself: then `recycle_reason` says why), stop."""
        try:
            await self.start()
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
            if self.worker is not None:
                if self.burst:
                    waits.append(asyncio.ensure_future(self.worker.wait_finished()))
                waits.append(asyncio.ensure_future(self.worker.recycled.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
            if self.worker is not None and self.worker.recycle_reason is not None and not stop.is_set():
                # The worker has drained and handed back its jobs; stop the rest the usual way.
                self.recycle_reason = self.worker.recycle_reason
                log.warning("stopping the task server to restart it: %s", self.recycle_reason)
        finally:
            await self.stop()

    def serve(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code (0 after a clean stop). A second
        signal stops at once, abandoning the drain."""
        return asyncio.run(run_until_signalled(self.run, drain_timeout=self.settings.worker.drain_timeout))

