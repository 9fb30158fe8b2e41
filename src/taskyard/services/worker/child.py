"""A worker's child process (`python -m taskyard.services.worker.child MODULE:ATTR FD`): imports
the app, then runs the jobs its parent sends over the socket FD, one at a time, with the same
executor as the worker; logs and prints go to stderr/stdout, which the parent logs.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from taskyard.app import Taskyard
from taskyard.core.job import Progress
from taskyard.services.worker import messages
from taskyard.services.worker.executor import execute
from taskyard.services.worker.threads import ThreadSlots

__all__ = ("import_app", "main")

log = logging.getLogger("taskyard.child")


def import_app(path: str) -> Taskyard:
    """The app at `MODULE:ATTR`; `ImportError`/`LookupError` naming what is missing."""
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "app", None)
    if not isinstance(app, Taskyard):
        raise LookupError(f"{path!r} is not a Taskyard app (found {type(app).__name__})")
    return app


class _Channel:
    """The socket to the parent: one writer at a time (handler threads report progress)."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.lines = self.sock.makefile("rb")
        self._lock = threading.Lock()

    def send(self, kind: str, **fields: Any) -> None:
        data = messages.encode(kind, **fields)
        with self._lock:
            self.sock.sendall(data)


def _die_with_parent() -> None:
    # A SIGKILLed worker cannot stop its children: have the kernel do it (Linux only).
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def main(argv: list[str] | None = None) -> int:
    """Serve jobs until the parent closes the socket."""
    args = sys.argv[1:] if argv is None else argv
    path, fd = args[0], int(args[1])
    _die_with_parent()
    # Ctrl-C reaches the whole process group: the parent decides what happens to the job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=os.environ.get("TASKYARD_CHILD_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    channel = _Channel(fd)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        app = import_app(path)
        if backend := os.environ.get(messages.BACKEND_ENV):
            app.use_backend(backend)  # the parent's, whatever chose it (--backend, settings)
    except Exception as exc:
        channel.send("fatal", error=f"cannot import the app {path!r} in a child process: {type(exc).__name__}: {exc}")
        return 1
    channel.send("ready", pid=os.getpid())
    loop = asyncio.new_event_loop()
    # One slot: a handler stopped by its timeout gets no grace here; the process ends instead.
    threads = ThreadSlots(1, name="taskyard-child", grace=0.0, log_lost=False)

    def report(job_id: str, progress: Progress) -> None:
        channel.send("progress", job_id=job_id, percent=progress.percent, message=progress.message)

    for line in channel.lines:
        msg = messages.decode(line)
        if msg["type"] != "run":
            continue
        job = messages.job_from_json(msg["job"])
        channel.send("started", job_id=job.id)
        outcome = loop.run_until_complete(execute(app, job, report_progress=report, threads=threads))
        clean = threads.idle
        channel.send("outcome", outcome=messages.outcome_to_json(outcome), clean=clean)
        if not clean:
            # A sync handler outlived its timeout and cannot be stopped from inside: end the
            # process (and the thread with it); the parent starts a fresh child.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
