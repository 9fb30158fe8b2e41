"""`manage.py taskyard_worker`: a taskyard worker for the Django project's tasks, or with
`--server` the whole task server (`taskyard run`'s roles: scheduler, maintenance, HTTP API and
dashboard, user services)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from taskyard.config import load_settings
from taskyard.contrib.django.backend import TaskyardBackend
from taskyard.contrib.django.compat import task_backends
from taskyard.errors import ConfigError


class Command(BaseCommand):
    """Run a worker (or the task server) over a `TaskyardBackend` until SIGTERM/SIGINT."""

    help = (
        "Run a taskyard worker for this project's tasks (with --server, the whole task server: "
        "scheduler, maintenance, HTTP API and dashboard) until SIGTERM/SIGINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """The command's options (the rest come from taskyard.toml and TASKYARD_*)."""
        parser.add_argument("--backend", default="default", help="The TASKS alias (default: default).")
        parser.add_argument("--queues", "-q", help="Comma-separated queues (default: the backend's QUEUES).")
        parser.add_argument("--concurrency", "-c", type=int, help="Jobs run at once.")
        parser.add_argument("--burst", action="store_true", help="Exit once nothing is due and nothing runs.")
        parser.add_argument(
            "--server", action="store_true",
            help="Run every role of `taskyard run` (scheduler, maintenance, HTTP, services), not only the worker.",
        )
        parser.add_argument("--only", help="Roles of this process, as `taskyard run --only`.")
        parser.add_argument("--config", help="taskyard settings file (default ./taskyard.toml).")

    def handle(self, *args: Any, **options: Any) -> None:
        """Discover the backend's tasks, then serve until stopped; exit with the server's code."""
        from taskyard.cli.run import restart_process
        from taskyard.server import TaskServer, setup_logging

        backend = task_backends[options["backend"]]
        if not isinstance(backend, TaskyardBackend):
            raise CommandError(f"TASKS[{options['backend']!r}] is not a TaskyardBackend ({type(backend).__name__})")
        names = backend.discover()
        queues = options["queues"].split(",") if options["queues"] else sorted(backend.queues) or None
        overrides: dict[str, Any] = {}
        roles = options["only"]
        if not (options["server"] or roles):  # `taskyard worker`: no HTTP to bind on a worker host
            roles, overrides["http"] = "worker,maintenance", {"enabled": False}
        if options["concurrency"] is not None:
            overrides["worker"] = {"concurrency": options["concurrency"]}
        # The store is the one the backend enqueues to, whatever TASKYARD_BACKEND or a
        # taskyard.toml `backend` would choose for a plain `taskyard run`.
        overrides["backend"] = backend.app.backend.url
        try:
            settings = load_settings(options["config"], **overrides)
            setup_logging(settings)
            server = TaskServer(backend.app, settings, only=roles, queues=queues, burst=options["burst"])
            server.build()
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"taskyard: {len(names)} Django task(s) on queues {', '.join(queues or ['*'])}")
        code = server.serve()
        backend.close()
        if server.recycle_reason is not None:
            restart_process(server.recycle_reason)
        if code:
            raise SystemExit(code)
