"""`HttpService`: uvicorn serving the ASGI app as a managed service.

The socket is bound in `on_start`, so a busy port fails the start with a clear error, and
uvicorn never installs signal handlers (the server owns signals).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from taskyard.errors import ConfigError
from taskyard.services.base import Service

__all__ = ("HttpService",)

log = logging.getLogger("taskyard.http")


class _Server(uvicorn.Server):
    """uvicorn without its signal handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpService(Service):
    """Serves `asgi_app` on `host:port` (port 0 picks a free port; see `bound_port`)."""

    default_id = "http"
    pausable = False  # it would keep serving; stop the task server instead

    def __init__(self, asgi_app: Any, *, host: str = "127.0.0.1", port: int = 5050, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asgi_app = asgi_app
        self.host = host
        self.port = port
        self.bound_port: int | None = None
        self._socket: socket.socket | None = None
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        """`http://host:port` of the bound socket."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.bound_port or self.port}"

    def bind(self) -> None:
        """Bind the listening socket now (idempotent); a busy port raises `ConfigError`."""
        if self._socket is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"http.port: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        sock.listen(2048)
        sock.setblocking(False)
        self._socket = sock
        self.bound_port = sock.getsockname()[1]

    async def on_start(self) -> None:
        self.bind()
        config = uvicorn.Config(
            self.asgi_app,
            log_config=None,  # our logging is already configured
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        self._server = _Server(config)
        log.info("serving HTTP on %s", self.url, extra={"service_id": self.id})

    async def run(self) -> None:
        assert self._server is not None and self._socket is not None
        # Returns once `should_exit` is set, which `stop()` does.
        await self._server.serve(sockets=[self._socket])

    async def on_stop(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._server = None

    async def stop(self, timeout: float | None = None) -> None:
        if self._server is not None:
            self._server.should_exit = True
        await super().stop(timeout)

