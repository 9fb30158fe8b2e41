"""`BackendHost`: an app's backend — its URL chosen once, the instance built once on first use,
opened on each event loop that uses it (the async API's, and the sync facade's `Portal`)."""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from taskyard import config
from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend
from taskyard.config import redact_url
from taskyard.errors import ConfigError
from taskyard.portal import Portal

__all__ = ("BackendHost",)

T = TypeVar("T")

_log = logging.getLogger("taskyard")
#: How long interpreter exit waits for the sync API's backend to close.
_EXIT_CLOSE_TIMEOUT = 10.0


class BackendHost:
    """The backend of one app. Its URL is, in order: the one `use()` was given (the CLI's
    `--backend`, the server's `backend` setting), the app's own argument, then
    `config.default_backend_url()` (`TASKYARD_BACKEND`, taskyard.toml, the default). It is read
    when the backend is first needed, and the backend is built from it once."""

    def __init__(self, backend: str | Backend | None) -> None:
        self._url: str | None = backend if isinstance(backend, str) else None
        self._backend: Backend | None = None if backend is None or isinstance(backend, str) else backend
        self._build_guard = threading.Lock()
        self._opened_in: asyncio.AbstractEventLoop | None = None
        self._open_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._portal: Portal | None = None
        self._portal_backend: Backend | None = None
        self._portal_backend_open = False
        self._portal_guard = threading.Lock()

    # -- choosing and building ---------------------------------------------------------------
    @property
    def is_built(self) -> bool:
        """Whether the backend instance exists (its URL can no longer change)."""
        return self._backend is not None

    @property
    def url(self) -> str:
        """The backend's URL (resolved now if nothing needed it yet)."""
        if self._backend is not None:
            return self._backend.url
        if self._url is None:
            self._url = config.default_backend_url()
        return self._url

    def use(self, url: str) -> None:
        """Run on the backend at `url` instead of the app's own choice. Only before the backend
        is built, or with the URL it was built from: another raises `ConfigError`."""
        with self._build_guard:
            if self._backend is None:
                self._url = url
                return
            if url != self._backend.url:
                raise ConfigError(
                    f"the app already uses the backend at {redact_url(self._backend.url)}; it cannot "
                    f"switch to {redact_url(url)}: choose the backend (use_backend, --backend, the "
                    "backend setting) before the app's first use"
                )

    @property
    def backend(self) -> Backend:
        """The backend, built on first use."""
        backend = self._backend
        if backend is None:
            with self._build_guard:
                if self._backend is None:
                    self._backend = backend_from_url(self.url)
                backend = self._backend
        return backend

    def replace(self, backend: Backend) -> None:
        """Put another, unopened backend instance in place (tests share one store this way)."""
        with self._build_guard:
            self._backend = backend
            self._url = backend.url

    # -- the async API's loop ----------------------------------------------------------------
    async def open(self) -> None:
        """Open the backend on the running loop (once per loop)."""
        loop = asyncio.get_running_loop()
        if self._opened_in is loop:
            return
        if self._open_lock is None or self._open_lock[0] is not loop:
            self._open_lock = (loop, asyncio.Lock())
        async with self._open_lock[1]:
            if self._opened_in is not loop:
                await self.backend.open()
                self._opened_in = loop

    async def aclose(self) -> None:
        """Close the backend opened by `open`."""
        if self._opened_in is not None:
            await self.backend.close()
            self._opened_in = None

    async def for_loop(self) -> Backend:
        """The backend for the running loop, opened: the portal's own on the portal's loop,
        else `backend`."""
        portal = self._portal
        if portal is not None and asyncio.get_running_loop() is portal.loop:
            backend = self._portal_backend
            assert backend is not None
            if not self._portal_backend_open:
                await backend.open()
                self._portal_backend_open = True
            return backend
        if self._opened_in is None:
            await self.open()
        return self.backend

    # -- the sync facade's loop --------------------------------------------------------------
    def run_sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the coroutine `make()` builds on the portal's loop (started on first use).

        The portal is closed at interpreter exit when nothing closed it before, so that a
        script which enqueues and ends leaves no connection pool's tasks pending."""
        with self._portal_guard:
            if self._portal is None:
                backend = self.backend
                self._portal = Portal()
                # A backend that may be shared across loops is; any other gets an instance of
                # its own on the portal's loop, built from the same URL.
                self._portal_backend = backend if backend.shared_across_loops else backend_from_url(backend.url)
                atexit.register(self._close_at_exit)
            portal = self._portal
        return portal.call(make())

    def _close_at_exit(self) -> None:
        """`close()` at interpreter exit, bounded in time; a failure is logged, not raised."""
        try:
            self.close(timeout=_EXIT_CLOSE_TIMEOUT)
        except Exception:
            _log.warning("could not close the sync API's backend at exit", exc_info=True)

    def close(self, *, timeout: float | None = None) -> None:
        """Close the portal's backend (if its own) and stop the portal's thread. `timeout`:
        seconds to wait for the backend to close (None: as long as it takes)."""
        with self._portal_guard:
            portal, backend, opened = self._portal, self._portal_backend, self._portal_backend_open
            self._portal = self._portal_backend = None
            self._portal_backend_open = False
        if portal is not None:
            atexit.unregister(self._close_at_exit)
            try:
                # (A forked child inherits the portal but not its thread: nothing to close there.)
                if backend is not None and backend is not self._backend and opened and portal.is_running:
                    portal.call(backend.close(), timeout=timeout)
            finally:
                portal.stop()
