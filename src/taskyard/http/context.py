"""`HttpContext`: what every HTTP route reads and acts through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskyard.app import Taskyard
from taskyard.config import Settings
from taskyard.http.auth import shared_authenticator
from taskyard.http.dashboard.session import SessionBook
from taskyard.observability import ServerMetrics
from taskyard.services.manager import ServiceManager

if TYPE_CHECKING:
    from taskyard.services.worker import Worker

__all__ = ("HttpContext",)


@dataclass(eq=False)
class HttpContext:
    """The app, this process's service manager (None in an API-only tool), settings, and
    the server's metrics. `draining` turns `/ready` to 503 while the server shuts down;
    `mount_api` False serves only health and metrics (a process without the `api` role)."""

    app: Taskyard
    manager: ServiceManager | None
    settings: Settings
    metrics: ServerMetrics | None = None
    worker: Worker | None = None
    draining: bool = False
    mount_api: bool = True
    #: Where a development run (no credentials configured) saves its admin token, else None:
    #: the sign-in page points there instead of at `taskyard token create`.
    dev_token_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _sessions: SessionBook | None = field(default=None, init=False, repr=False)

    def session_book(self) -> SessionBook:
        """The dashboard's session signer, one per server, so that every route that accepts
        the dashboard's cookie (the dashboard, the API documents) checks it with the same key."""
        if self._sessions is None:
            auth = shared_authenticator(self)
            self._sessions = SessionBook(
                auth.secret, idle=self.settings.http.session_idle_seconds, is_current=auth.is_current
            )
        return self._sessions
