"""An app for process-isolation tests: every task runs in a child process of the worker."""

from __future__ import annotations

import ctypes
import os
import signal
import time

from pydantic import BaseModel

from taskyard import Retry, Taskyard


class Area(BaseModel):
    """A payload model (validated in the child)."""

    width: int
    height: int


def build(backend: str | None = None) -> Taskyard:
    """The app on `backend` (default: TASKYARD_BACKEND)."""
    app = Taskyard(backend)
    process = {"isolation": "process"}
    app.task("hang", timeout=1, retry=Retry(attempts=1), **process)(hang)
    app.task("quick", **process)(quick)
    app.task("hog", memory_limit=150, retry=Retry(attempts=1), **process)(hog)
    app.task("segfault", max_rescues=2, **process)(segfault)
    app.task("exit", max_rescues=0, **process)(exit_now)
    app.task("steps", **process)(steps)
    app.task("area", **process)(area)
    app.task("whoami", **process)(whoami)
    app.task("backend_in_child", **process)(backend_in_child)
    app.task("threaded")(quick)  # the default isolation: runs in the worker process
    return app


def hang(payload: dict) -> None:
    """Blocks far past its 1 s timeout (in C: time.sleep)."""
    time.sleep(60)


def quick(payload: dict) -> int:
    """The pid of the process that ran it."""
    return os.getpid()


def hog(payload: dict) -> int:
    """Grows to `mb` MB and holds it (a child past its memory limit is killed)."""
    block = bytearray(int(payload.get("mb", 400)) * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1  # touch every page: resident, not just reserved
    time.sleep(float(payload.get("hold", 30)))
    return len(block)


def segfault(payload: dict) -> None:
    """Crashes its process with SIGSEGV every time."""
    if payload.get("how") == "ctypes":
        ctypes.string_at(0)
    os.kill(os.getpid(), signal.SIGSEGV)


def exit_now(payload: dict) -> None:
    """Ends its process without a word."""
    os._exit(3)


async def steps(payload: dict, ctx) -> str:
    """Reports progress, then waits (to be cancelled) for `seconds`."""
    import asyncio

    ctx.progress(50, f"half way in {os.getpid()}")
    await asyncio.sleep(float(payload.get("seconds", 60)))
    ctx.progress(100, "done")
    return "done"


def area(payload: Area, ctx) -> dict:
    """A pydantic payload and the job context, in a child."""
    return {"area": payload.width * payload.height, "attempt": ctx.attempt, "job": ctx.job.id,
            "pid": os.getpid()}


def whoami(payload: dict) -> int:
    return os.getpid()


def backend_in_child(payload: dict) -> str:
    """The backend URL of this module's app, as the child process sees it."""
    return app.backend_url


app = build()
