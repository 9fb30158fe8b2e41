"""`TaskServer`: the composition root — settings → backend → leader, worker, scheduler,
maintenance, user services and HTTP → one `ServiceManager`. The only place that touches
signals: SIGTERM/SIGINT drain the worker, release leadership and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import inspect
import logging
import os
import secrets
import signal
import stat
import sys
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from taskyard.app import ServiceSpec, Taskyard
from taskyard.backends import backend_from_url
from taskyard.clock import Clock
from taskyard.config import Settings, option_key, redact_url, service_key
from taskyard.errors import ConfigError
from taskyard.http.asgi import create_asgi_app
from taskyard.http.auth import (
    Authenticator,
    AuthError,
    Role,
    check_bind,
    is_loopback,
    issue_token,
    new_secret,
    weak_secret_reason,
)
from taskyard.http.context import HttpContext
from taskyard.http.dashboard.sampler import DepthSampler
from taskyard.http.metrics import MetricsFeed
from taskyard.http.service import HttpService
from taskyard.observability import ServerMetrics, configure_logging
from taskyard.services.alerts import build_alerter
from taskyard.services.base import Service, UnknownOptionError
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

__all__ = ("ROLES", "TaskServer", "build_user_service", "setup_logging")

log = logging.getLogger("taskyard.server")

#: What a process can do; `--only` picks a subset (the default is all of them).
ROLES = ("worker", "scheduler", "maintenance", "api", "services")

#: Where a development run (auth on, no credentials, loopback) saves its admin token.
DEV_TOKEN_FILE = ".taskyard-token"  # noqa: S105 - a file name, not a secret
#: The signing secret that development runs started in one directory share, so the token in
#: `DEV_TOKEN_FILE` opens every one of them (two `run`s side by side, a restart).
DEV_SECRET_FILE = ".taskyard-dev-secret"  # noqa: S105 - a file name
#: How long the token in `DEV_TOKEN_FILE` is valid (a run reuses it while a day is left).
DEV_TOKEN_TTL = 7 * 86400


def _write_private(path: Path, text: str, *, replace: bool) -> bool:
    """Write `text` to `path` (mode 0600) atomically; with `replace=False`, only if `path`
    does not exist yet (returns False when another process made it first).

    A temporary file in the same directory (created exclusively, never through a symlink)
    is renamed over `path`: a file already there keeps neither its mode nor its content, and
    a symlink at `path` is replaced, not followed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic create-if-absent: two processes starting at once agree
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read_private(path: Path) -> str | None:
    """The text of `path` when it is a regular file of ours that only we may read (not a
    symlink); else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # missing, or a symlink (ELOOP)
        return None
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.getuid():
            return None
        return f.read().strip()


def shared_dev_secret(path: Path = Path(DEV_SECRET_FILE)) -> str:
    """The development signing secret of this directory: read from `path`, or made (48
    random bytes, URL-safe) and saved there with mode 0600 by the first process to start."""
    text = _read_private(path)
    if text is not None and weak_secret_reason(text) is None:
        return text
    # Missing, weak, a symlink, or readable by others: a new one (replacing a bad one).
    secret = new_secret()
    if not _write_private(path, secret, replace=path.is_symlink() or path.exists()):
        text = _read_private(path)
        if text is None or weak_secret_reason(text) is not None:
            raise ConfigError(f"{path}: another process wrote a development secret that cannot be used; remove it")
        return text
    return secret


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


def build_user_service(spec: ServiceSpec, app: Taskyard, options: dict[str, Any]) -> Service:
    """Build a registered user service: a `Service` subclass (given `app` if its constructor
    takes it) or a factory `f(app)`; then apply its `[services.<id>]` options."""
    factory = spec.factory
    try:
        if isinstance(factory, type):
            params = inspect.signature(factory).parameters
            service = factory(app) if "app" in params else factory()
        else:
            takes_app = any(
                p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                for p in inspect.signature(factory).parameters.values()
            )
            service = factory(app) if takes_app else factory()
    except ValueError as exc:
        raise ConfigError(f"services.{spec.id}: {exc}") from None
    if not isinstance(service, Service):
        raise ConfigError(
            f"service {spec.id!r}: its factory returned {type(service).__name__}, not a Service"
        )
    if options:
        try:
            service.apply_options(options)
        except UnknownOptionError as exc:
            hint = f"; did you mean {exc.suggestion!r}?" if exc.suggestion else ""
            raise ConfigError(
                f"unknown setting 'services.{spec.id}.{exc.option}': service {spec.id!r} has no "
                f"option {exc.option!r}{hint} (its options: {', '.join(exc.known) or 'none'}; a "
                "service reads more of them by naming them in its `extra_options`)"
            ) from None
        except ValueError as exc:
            key, sep, message = str(exc).partition(": ")
            name = f"services.{spec.id}.{key}" if sep else f"services.{spec.id}"
            raise ConfigError(f"invalid setting {name!r}: {message if sep else exc}") from None
    service.id = spec.id
    service.name = spec.name
    return service


def _job_log_level(setting: str) -> int | None:
    """`logging.jobs` as a level for the worker (None: no line per job)."""
    return None if setting == "OFF" else logging.getLevelNamesMapping()[setting]


def _take_critical(service_id: str, options: dict[str, Any]) -> bool | None:
    """Remove the manager's own `critical` option from a service's options and return it
    (None when not set): it overrides `@app.service(critical=...)`."""
    for key in [k for k in options if option_key(k) == "critical"]:
        value = options.pop(key)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            value = value.lower() in ("true", "1")
        if not isinstance(value, bool):
            raise ConfigError(f"invalid setting 'services.{service_id}.{key}': must be true or false (got {value!r})")
        return value
    return None


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
        if "backend" in s.model_fields_set and s.backend != self.app.backend.url:
            # The app was built at import from the environment; taskyard.toml or a flag chose another.
            self.app.backend = backend_from_url(s.backend)
        user_services = self._user_services()
        if s.http.enabled:
            check_bind(s.http.host, s.http.auth_enabled)
            if "api" in self.roles:
                s = self.settings = self._with_dev_credentials(s)
        # HTTP first: it answers /health while the rest starts and /ready (503) while it drains.
        if s.http.enabled:
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
        for spec, svc in user_services:
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
            # Listed last: it only feeds the dashboard's queue-depth chart.
            sampler = DepthSampler(self.app, self.context.depth, clock=self.clock)
            self.manager.register(sampler.id, sampler, name="Queue depth sampler")
        self.manager.services()  # unknown dependencies and cycles fail here, before any start
        self._built = True

    def _with_dev_credentials(self, s: Settings) -> Settings:
        """Authentication on with no credentials configured: on loopback, sign with this
        directory's shared development secret (the admin token is handed out by
        `_publish_dev_token` once the HTTP server serves); elsewhere refuse to start.

        Building alone (`taskyard services list`) writes no token: only a serving process does.
        """
        http = s.http
        if not http.auth_enabled or http.jwt_secret is not None or http.api_keys:
            return s
        if not is_loopback(http.host):
            raise ConfigError(
                "invalid setting 'http.jwt_secret': authentication is on and the server binds "
                f"{http.host!r}, but neither http.jwt_secret nor http.api_keys is set"
            )
        self._dev_run = True
        secret = shared_dev_secret()
        return s.model_copy(update={"http": http.model_copy(update={"jwt_secret": SecretStr(secret)})})

    def _publish_dev_token(self) -> None:
        """A development run now serves the API: hand the operator an admin token (in
        `.taskyard-token`, mode 0600, and on the terminal, never in the logs).

        The token already in the file is kept while it is valid for at least another day
        (another run in this directory wrote it with the same shared secret): the token a
        running server printed stays the one in the file, and every run prints the same one."""
        http = self.settings.http
        path = Path(DEV_TOKEN_FILE)
        auth = Authenticator(http)
        existing = _read_private(path)
        token: str | None = None
        if existing:
            with contextlib.suppress(AuthError):
                principal = auth.authenticate(existing, now=self.clock.now() + timedelta(days=1))
                token = existing if principal.role is Role.ADMIN else None
        if token is None:
            secret = http.jwt_secret.get_secret_value() if http.jwt_secret is not None else ""
            token = issue_token(
                secret, role="admin", ttl=DEV_TOKEN_TTL, subject="dev-run",
                audience=http.jwt_audience, issuer=http.jwt_issuer,
            )
            _write_private(path, token, replace=True)
        self.dev_token = token
        log.warning(
            "no http.jwt_secret or http.api_keys configured: the admin token is in %s; "
            "development runs started in this directory share its signing secret (%s), so "
            "the token opens each of them. Set http.jwt_secret for anything else", path,
            DEV_SECRET_FILE,
        )
        if sys.stderr.isatty():
            port = (self.http.bound_port if self.http is not None else None) or http.port
            sys.stderr.write(
                f"\n  Dashboard: http://{http.host}:{port}/"
                f"  — sign in with this admin token (also in {path}):\n  {token}\n\n"
            )

    def _user_services(self) -> list[tuple[ServiceSpec, Service]]:
        specs = self.app.service_specs
        by_key = {service_key(service_id): service_id for service_id in specs}
        configured: dict[str, dict[str, Any]] = {}
        for key, options in self.settings.services.items():
            # Environment variables cannot spell `csv-import`; CSV_IMPORT means the same.
            service_id = by_key.get(service_key(key))
            if service_id is None:
                close = difflib.get_close_matches(key, list(specs), n=1)
                hint = f"; did you mean 'services.{close[0]}'?" if close else ""
                raise ConfigError(f"unknown setting 'services.{key}': no such service{hint}")
            configured[service_id] = {**configured.get(service_id, {}), **options}
        critical = {sid: _take_critical(sid, opts) for sid, opts in configured.items()}
        if self.only_service is not None:
            if self.only_service not in specs:
                known = ", ".join(specs) or "none registered"
                raise ConfigError(f"--service: no service {self.only_service!r} (known: {known})")
            chosen = [specs[self.only_service]]
        elif "services" in self.roles:
            chosen = list(specs.values())
        else:
            chosen = []
        built = []
        for spec in chosen:
            if (is_critical := critical.get(spec.id)) is not None:
                spec = replace(spec, critical=is_critical)
            built.append((spec, build_user_service(spec, self.app, configured.get(spec.id, {}))))
        return built

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
            self._publish_dev_token()  # only now: a process that serves nothing hands out no token
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
        return asyncio.run(self._serve())

    async def _serve(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        main = asyncio.current_task()
        signals = 0

        def on_signal(signum: int) -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                log.info("%s received: stopping (drain up to %.0fs)", signal.Signals(signum).name,
                         self.settings.worker.drain_timeout)
                stop.set()
            elif main is not None:
                log.warning("second signal: stopping now")
                main.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            await self.run(stop)
        except asyncio.CancelledError:
            return 1
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        return 0
