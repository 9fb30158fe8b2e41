"""`ThreadSlots`: the worker's threads for sync handlers. Each runs one job at a time; a thread
whose job is stopped (timeout, cancel) is retired: an exception is raised inside it until it
ends, and one still running after the grace is *lost* — never given another job.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ("LostThread", "ThreadSlots", "raise_in_thread")

log = logging.getLogger("taskyard.worker")

#: Seconds between the exceptions raised into a thread that is being stopped: a handler that
#: catches one (`except Exception`) gets the next.
RERAISE_INTERVAL = 0.2


def raise_in_thread(thread: threading.Thread, exc_type: type[BaseException]) -> bool:
    """Schedule `exc_type` to be raised in `thread` the next time it runs Python code (as
    Dramatiq's `TimeLimit` does). A thread blocked in C (`time.sleep`, a socket read) only
    sees it when that call returns. False when the thread has already ended."""
    ident = thread.ident
    if ident is None or not thread.is_alive():
        return False
    found = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))
    if found > 1:  # cannot happen with a live ident; undo rather than hit other threads
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
    return bool(found == 1)


@dataclass(frozen=True, slots=True)
class LostThread:
    """A thread that did not stop within the grace after its job was stopped: it is left to
    finish on its own and never given another job."""

    thread: str
    job_id: str
    task: str
    since: datetime

    def to_json(self) -> dict[str, Any]:
        return {"thread": self.thread, "job_id": self.job_id, "task": self.task, "since": self.since.isoformat()}


class _Work:
    """One call handed to a runner; its result goes back to `future` on the worker's loop."""

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop):
        self.fn = fn
        self.future = future
        self.loop = loop
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:  # handed to the awaiting job, like concurrent.futures does
            self._settle(None, exc)
        else:
            self._settle(result, None)

    def _settle(self, result: Any, exc: BaseException | None) -> None:
        self.finished.set()

        def settle() -> None:
            if self.future.done():
                return  # the job was stopped meanwhile: nobody waits for this any more
            if exc is not None:
                self.future.set_exception(exc)
            else:
                self.future.set_result(result)

        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker is gone
            self.loop.call_soon_threadsafe(settle)


class _Runner(threading.Thread):
    """A reusable thread: runs the work put in its inbox, one at a time, until it gets None."""

    def __init__(self, name: str, on_exit: Callable[[_Runner], None]) -> None:
        # Daemon: a lost thread must not keep the process alive (or block a recycle).
        super().__init__(name=name, daemon=True)
        self.inbox: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._on_exit = on_exit

    def run(self) -> None:
        try:
            while (work := self.inbox.get()) is not None:
                work.run()
        except BaseException:  # noqa: S110 - a stop raised after its job ended: leave quietly
            pass
        finally:
            self._on_exit(self)


class ThreadSlots:
    """`size` slots, each a reusable thread running one sync handler at a time.

    `run()` takes a free slot (starting its thread on first use). When the awaiting job is
    cancelled (its timeout, a cancel request, a lost lease) the slot's thread is retired at
    once — the slot gets a fresh thread for the next job — and `stop_with()` is raised inside
    it every `RERAISE_INTERVAL` for `grace` seconds; a thread still running then is lost:
    logged once, listed in `lost`, and `on_lost` is called. Owned by the worker: it calls
    `close()` when it stops (lost and stopping threads are left to end on their own).
    `log_lost=False` keeps a lost thread out of the log (a child process ends instead).
    """

    def __init__(
        self,
        size: int,
        *,
        name: str = "taskyard",
        grace: float = 5.0,
        on_lost: Callable[[LostThread], None] | None = None,
        log_lost: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError("thread slots: size must be at least 1")
        self.size = size
        self.name = name
        self.grace = grace
        self.on_lost = on_lost
        self.log_lost = log_lost
        self._idle: list[_Runner] = []
        self._busy: dict[_Runner, tuple[str, str]] = {}
        self._stopping: dict[_Runner, asyncio.Task[None]] = {}
        self._lost: dict[_Runner, LostThread] = {}
        self._exited: dict[_Runner, asyncio.Event] = {}
        self._numbers = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        #: Threads stopped by an exception within the grace, and threads lost, since start.
        self.stopped_total = 0
        self.lost_total = 0

    # -- state -------------------------------------------------------------------------------
    @property
    def busy(self) -> int:
        """Slots running a job now."""
        return len(self._busy)

    @property
    def free(self) -> int:
        """Slots that can take a job now (a retired thread no longer holds its slot)."""
        return self.size - len(self._busy)

    @property
    def idle(self) -> bool:
        """No thread runs a handler: none busy, none being stopped, none lost."""
        return not self._busy and not self._stopping and not self.lost

    @property
    def lost(self) -> list[LostThread]:
        """Threads still running long after their job was stopped."""
        # is_alive() too: a thread that ended is no longer lost even if its exit notice was missed.
        return [lost for runner, lost in self._lost.items() if runner.is_alive()]

    def status(self) -> dict[str, Any]:
        """The pool as health details show it."""
        lost = self.lost
        return {
            "slots": self.size,
            "busy": self.busy,
            "stopping": len(self._stopping),
            "lost_threads": len(lost),
            "lost": [x.to_json() for x in lost],
            "stopped_total": self.stopped_total,
            "lost_total": self.lost_total,
        }

    # -- running -----------------------------------------------------------------------------
    async def run(
        self,
        fn: Callable[[], Any],
        *,
        job_id: str = "",
        task: str = "",
        stop_with: Callable[[], type[BaseException]] = lambda: asyncio.CancelledError,
    ) -> Any:
        """Run `fn()` in a free slot's thread and return its result (or raise its exception).
        Cancelled while `fn` runs: retire the thread, raising `stop_with()` in it (see class)."""
        if self._closed:
            raise RuntimeError("thread slots are closed: the worker has stopped")
        loop = self._loop = asyncio.get_running_loop()
        runner = self._acquire()
        work = _Work(fn, loop.create_future(), loop)
        self._busy[runner] = (job_id, task)
        runner.inbox.put(work)
        try:
            return await work.future
        except asyncio.CancelledError:
            if not work.finished.is_set():
                self._retire(runner, stop_with(), job_id, task)
            raise
        finally:
            if self._busy.pop(runner, None) is not None:
                self._idle.append(runner)

    def _acquire(self) -> _Runner:
        if self._idle:
            return self._idle.pop()
        if len(self._busy) >= self.size:
            # The worker runs at most `size` jobs at once, so this means a bookkeeping bug.
            raise RuntimeError(f"all {self.size} thread slots are busy")
        runner = _Runner(f"{self.name}-{next(self._numbers)}", self._thread_exited)
        assert self._loop is not None
        self._exited[runner] = asyncio.Event()
        runner.start()
        return runner

    def _retire(self, runner: _Runner, exc_type: type[BaseException], job_id: str, task: str) -> None:
        self._busy.pop(runner, None)  # the slot is free for a fresh thread from now on
        runner.inbox.put(None)  # once its handler returns, the thread ends
        stopper = asyncio.create_task(self._stop(runner, exc_type, job_id, task), name=f"stop:{runner.name}")
        self._stopping[runner] = stopper

    async def _stop(self, runner: _Runner, exc_type: type[BaseException], job_id: str, task: str) -> None:
        exited = self._exited.get(runner)
        if exited is None:  # it ended before this stopper ran
            self._stopping.pop(runner, None)
            self.stopped_total += 1
            return
        deadline = time.monotonic() + self.grace
        try:
            while not exited.is_set() and runner.is_alive():
                raise_in_thread(runner, exc_type)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(exited.wait(), min(RERAISE_INTERVAL, left))
        finally:
            self._stopping.pop(runner, None)
        if exited.is_set() or not runner.is_alive():
            self.stopped_total += 1
            return
        lost = LostThread(thread=runner.name, job_id=job_id, task=task, since=datetime.now(UTC))
        self._lost[runner] = lost
        self.lost_total += 1
        if self.log_lost:
            log.error(
                "thread %s running job %s (task %s) did not stop within %.1fs of being stopped "
                "(blocked outside Python code?); it is lost: left to finish on its own, never "
                "given another job (%d lost now)",
                runner.name, job_id, task, self.grace, len(self._lost), extra={"job_id": job_id},
            )
        if self.on_lost is not None:
            self.on_lost(lost)

    def _thread_exited(self, runner: _Runner) -> None:
        """Called in the runner's own thread as it ends."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(self._forget, runner)

    def _forget(self, runner: _Runner) -> None:
        event = self._exited.pop(runner, None)
        if event is not None:
            event.set()
        lost = self._lost.pop(runner, None)
        if lost is not None:
            log.info("lost thread %s (job %s) has ended after all", runner.name, lost.job_id)
        with contextlib.suppress(ValueError):
            self._idle.remove(runner)

    async def close(self) -> None:
        """End the idle threads; stop waiting on the stopping ones (they, and lost threads,
        are daemons left to end on their own). Idempotent."""
        self._closed = True
        for runner in self._idle:
            runner.inbox.put(None)
        self._idle = []
        stoppers = list(self._stopping.values())
        for stopper in stoppers:
            stopper.cancel()
        for stopper in stoppers:
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
