"""`ChildPool`: the worker's side of `isolation="process"` — child processes that import the
app and run one job at a time, reused across jobs, replaced after `max_jobs_per_child` jobs or
past `max_memory_per_child`; killed past a job's timeout or memory limit, or when it is
cancelled. A child that dies is reported as `crashed` (the worker rescues the job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from taskyard.app import Taskyard
from taskyard.clock import utcnow
from taskyard.core.job import AttemptError, Job, Progress
from taskyard.core.task import TaskSpec
from taskyard.errors import MemoryLimitExceeded
from taskyard.services.worker import messages
from taskyard.services.worker.executor import UNKNOWN_TASK, Outcome, OutcomeKind

__all__ = ("Child", "ChildPool", "ChildStartError", "import_path_of", "rss_mb")

log = logging.getLogger("taskyard.worker")
child_log = logging.getLogger("taskyard.child")

#: Seconds a child gets between SIGTERM and SIGKILL.
KILL_GRACE = 1.0
#: Seconds past a job's timeout before the parent kills its child: the child's own (soft)
#: timeout fires first when its event loop is free, and reports the same timeout error.
TIMEOUT_MARGIN = 0.5
#: Seconds between two readings of a running child's memory.
SAMPLE_INTERVAL = 0.25
#: Seconds a new child may take to import the app.
START_TIMEOUT = 60.0

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


class ChildStartError(RuntimeError):
    """A child process could not be started or could not import the app."""


def rss_mb(pid: int) -> float | None:
    """Resident memory of process `pid` in MB (from /proc; None where there is none)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE / (1024 * 1024)
    except (OSError, IndexError, ValueError):
        return None


def import_path_of(app: Taskyard, spec: TaskSpec) -> str:
    """Where a child imports `app` from: `app.import_path` (the CLI's `--app`), else the
    module of the task's handler, at the attribute holding `app` (or another app that
    registers the task). `ChildStartError` when there is none."""
    if app.import_path:
        return app.import_path
    module_name = getattr(spec.handler, "__module__", None) or "?"
    module = sys.modules.get(module_name)
    if module is None or module_name == "__main__":
        raise ChildStartError(
            f"task {spec.name!r}: isolation='process' needs the app importable by a child "
            f"process, but its handler lives in {module_name!r}; start the worker with "
            "--app MODULE:ATTR or define the handler in an importable module"
        )
    found = [k for k, v in vars(module).items() if v is app]
    found += [
        k for k, v in vars(module).items() if isinstance(v, Taskyard) and spec.name in v.tasks
    ]
    if not found:
        raise ChildStartError(
            f"task {spec.name!r}: isolation='process' needs the app importable by a child "
            f"process, and module {module_name!r} has no Taskyard app registering it; start "
            "the worker with --app MODULE:ATTR"
        )
    return f"{module_name}:{found[0]}"


def _exit_reason(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"the child process running it died (signal {-returncode}, {name})"
    return f"the child process running it exited unexpectedly (status {returncode})"


class Child:
    """One child process: its socket, its output forwarded to the log, jobs it has run."""

    def __init__(
        self,
        path: str,
        proc: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.path = path
        self.proc = proc
        self.pid = proc.pid
        self.reader = reader
        self.writer = writer
        self.jobs = 0
        assert proc.stdout is not None and proc.stderr is not None
        self._pipes = [
            asyncio.create_task(self._forward(proc.stdout, "stdout"), name=f"child:{self.pid}:stdout"),
            asyncio.create_task(self._forward(proc.stderr, "stderr"), name=f"child:{self.pid}:stderr"),
        ]

    @classmethod
    async def start(cls, path: str, backend_url: str | None = None) -> Child:
        """Start a child importing `path`, on the backend at `backend_url` (its parent's: the
        CLI's `--backend` is not in the environment); waits for its `ready`.
        `ChildStartError` if not."""
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        if backend_url is not None:
            env[messages.BACKEND_ENV] = backend_url
        env["PYTHONUNBUFFERED"] = "1"
        # The parent's import path (the CLI adds the current directory; pytest its root).
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), *sys.path) if p)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "taskyard.services.worker.child", path, str(theirs.fileno()),
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            )
        except OSError as exc:
            ours.close()
            raise ChildStartError(f"cannot start a child process: {exc}") from exc
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours, limit=messages.MAX_LINE)
        child = cls(path, proc, reader, writer)
        try:
            msg = await asyncio.wait_for(child.receive(), START_TIMEOUT)
        except (TimeoutError, messages.ProtocolError) as exc:
            await child.kill()
            raise ChildStartError(f"a child process importing {path!r} did not start: {exc}") from exc
        except BaseException:  # cancelled while starting: no child left behind
            await asyncio.shield(child.kill())
            raise
        if msg is None or msg["type"] != "ready":
            await child.kill()
            error = msg["error"] if msg is not None and msg["type"] == "fatal" else _exit_reason(proc.returncode)
            raise ChildStartError(str(error))
        log.info("started child process %d (app %s)", child.pid, path)
        return child

    async def _forward(self, stream: asyncio.StreamReader, name: str) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            level, _, rest = text.partition(" ")
            if name == "stderr" and level in _LEVELS:
                child_log.log(logging.getLevelName(level), "[child %d] %s", self.pid, rest)
            else:
                child_log.info("[child %d %s] %s", self.pid, name, text)

    def send(self, kind: str, **fields: Any) -> None:
        """Queue a message to the child."""
        self.writer.write(messages.encode(kind, **fields))

    async def receive(self) -> dict[str, Any] | None:
        """The child's next message; None once its side is closed (it exited)."""
        try:
            line = await self.reader.readline()
        except ConnectionError:
            return None  # reset: the child died with our message unread
        except ValueError as exc:  # a line past the limit
            raise messages.ProtocolError(f"unreadable message from child {self.pid}: {exc}") from exc
        return messages.decode(line) if line else None

    def is_alive(self) -> bool:
        """True while the process runs (and its socket is open: an idle child that died is
        seen by its end of file before its exit status arrives)."""
        return self.proc.returncode is None and not self.reader.at_eof()

    def _signal(self, sig: int) -> None:
        # Not `proc.terminate()`: Popen polls first, and reaping the process there would hide
        # its exit status from asyncio's child watcher (it then reports 255).
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    async def kill(self) -> int | None:
        """SIGTERM, SIGKILL after `KILL_GRACE`; returns the exit status."""
        if self.proc.returncode is None:
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), KILL_GRACE)
            except TimeoutError:
                self._signal(signal.SIGKILL)
        return await self.close()

    async def exit_status(self) -> int | None:
        """The status of a child whose socket closed: it is exiting, give it a moment."""
        try:
            return await asyncio.wait_for(self.proc.wait(), KILL_GRACE)
        except TimeoutError:
            return await self.kill()

    async def close(self) -> int | None:
        """Close the socket (an idle child exits on its own), wait for the process and its
        output; kill it if it does not exit within `KILL_GRACE`."""
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        try:
            await asyncio.wait_for(self.proc.wait(), KILL_GRACE)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await self.proc.wait()
        # A grandchild may hold the pipes open: do not wait for their end forever.
        await asyncio.wait(self._pipes, timeout=KILL_GRACE)
        for task in self._pipes:
            task.cancel()
        return self.proc.returncode


def _error(job: Job, exc: BaseException) -> AttemptError:
    return AttemptError.of_text(
        attempt=job.attempt, type=type(exc).__name__, message=str(exc), traceback=None, at=utcnow()
    )


class ChildPool:
    """Children of one worker; `run()` is called with at most `size` jobs at once."""

    def __init__(
        self,
        app: Taskyard,
        *,
        size: int,
        max_jobs_per_child: int = 1000,
        max_memory_per_child: float | None = None,
        memory_limit: float | None = None,
    ) -> None:
        self.app = app
        self.size = size
        self.max_jobs_per_child = max_jobs_per_child
        self.max_memory_per_child = max_memory_per_child
        self.memory_limit = memory_limit
        self._idle: list[Child] = []
        self._busy: set[Child] = set()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """Process ids of the live children (idle and busy)."""
        return sorted(c.pid for c in (*self._idle, *self._busy))

    def wants(self, job: Job, isolation: str) -> bool:
        """True when `job` runs in a child under the worker's `isolation` setting."""
        spec = self.app.tasks.get(job.task)
        return spec is not None and (isolation == "process" or spec.isolation == "process")

    async def run(self, job: Job, *, report_progress: Callable[[str, Progress], None]) -> Outcome:
        """Run `job` in a child and return its `Outcome`; `crashed` (with the reason) when the
        child died under it. Cancelling this kills the child."""
        spec = self.app.tasks.get(job.task)
        if spec is None:
            return Outcome(OutcomeKind.RELEASED, reason=UNKNOWN_TASK)
        for _ in range(3):
            try:
                child = await self._acquire(import_path_of(self.app, spec))
            except ChildStartError as exc:
                return Outcome(OutcomeKind.FAILED, error=_error(job, exc), retryable=False)
            outcome = await self._run_in(child, job, spec, report_progress)
            if outcome is not None:
                return outcome
            # The child was dead before it took the job (killed while idle): try a fresh one.
        return Outcome(OutcomeKind.CRASHED, reason="child processes kept dying before they could take the job")

    async def _run_in(
        self, child: Child, job: Job, spec: TaskSpec, report_progress: Callable[[str, Progress], None]
    ) -> Outcome | None:
        """`job` in `child`; None when the child never took it."""
        self._busy.add(child)
        keep = False
        try:
            child.jobs += 1
            child.send("run", job=messages.job_to_json(job))
            outcome, keep = await self._watch(child, job, spec, report_progress)
            return outcome
        finally:
            self._busy.discard(child)
            if keep:
                await self._release(child)
            else:
                # Also on cancellation: the job's handler must stop now, whatever it does.
                await asyncio.shield(child.kill())

    async def _watch(
        self, child: Child, job: Job, spec: TaskSpec, report_progress: Callable[[str, Progress], None]
    ) -> tuple[Outcome | None, bool]:
        """Wait for the child's outcome, forwarding progress, sampling its memory and
        minding the timeout. Returns the outcome (None: the child ended before it took the
        job) and whether the child may be reused."""
        loop = asyncio.get_running_loop()
        timeout = job.timeout if job.timeout is not None else spec.timeout
        deadline = None if timeout is None else loop.time() + timeout + TIMEOUT_MARGIN
        limit = spec.memory_limit if spec.memory_limit is not None else self.memory_limit
        started: list[bool] = []
        reading = asyncio.ensure_future(self._outcome(child, job, report_progress, started))
        try:
            while True:
                wait = SAMPLE_INTERVAL if deadline is None else min(SAMPLE_INTERVAL, max(deadline - loop.time(), 0))
                done, _ = await asyncio.wait({reading}, timeout=wait)
                if done:
                    break
                if limit is not None and (rss := rss_mb(child.pid)) is not None and rss > limit:
                    await child.kill()
                    exc = MemoryLimitExceeded(
                        f"the child process running the job used {rss:.0f} MB, past the job's "
                        f"memory limit of {limit:g} MB, and was killed"
                    )
                    return Outcome(OutcomeKind.FAILED, error=_error(job, exc), retryable=spec.retry.is_retryable(exc)), False
                if deadline is not None and loop.time() >= deadline:
                    await child.kill()
                    timed_out = TimeoutError(f"job timed out after {timeout}s; its child process was killed")
                    return Outcome(
                        OutcomeKind.FAILED, error=_error(job, timed_out), retryable=spec.retry.is_retryable(timed_out)
                    ), False
        finally:
            reading.cancel()
        try:
            msg = reading.result()
        except messages.ProtocolError as exc:
            log.error("child %d: %s", child.pid, exc, extra={"job_id": job.id})
            msg = None
        if msg is None:
            status = await child.exit_status()
            if not started:
                log.warning("child %d had ended (%s) before it took job %s", child.pid,
                            _exit_reason(status), job.id, extra={"job_id": job.id})
                return None, False
            return Outcome(OutcomeKind.CRASHED, reason=_exit_reason(status)), False
        outcome = messages.outcome_from_json(msg["outcome"])
        if outcome.kind is OutcomeKind.RELEASED and outcome.reason == UNKNOWN_TASK:
            # Not registered in the app the child imported: another claim would end the same.
            missing = ChildStartError(
                f"task {job.task!r} is not registered in the app {child.path!r} that the child "
                "process imported; register it there or start the worker with the right --app"
            )
            return Outcome(OutcomeKind.FAILED, error=_error(job, missing), retryable=False), False
        return outcome, bool(msg["clean"])

    async def _outcome(
        self,
        child: Child,
        job: Job,
        report_progress: Callable[[str, Progress], None],
        started: list[bool],
    ) -> dict[str, Any] | None:
        while (msg := await child.receive()) is not None:
            if msg["type"] == "started" and msg["job_id"] == job.id:
                started.append(True)
            elif msg["type"] == "outcome":
                return msg
            elif msg["type"] == "progress" and msg["job_id"] == job.id:
                try:
                    report_progress(job.id, Progress.of(float(msg["percent"]), msg["message"]))
                except (TypeError, ValueError) as exc:
                    log.warning("child %d sent bad progress: %s", child.pid, exc, extra={"job_id": job.id})
        return None

    async def _acquire(self, path: str) -> Child:
        while self._idle:
            child = self._idle.pop()
            if child.is_alive() and child.path == path:
                return child
            await child.close()
        return await Child.start(path, self.app.backend_url)

    async def _release(self, child: Child) -> None:
        """Back to the idle list, or replaced when it has served enough or grown too big."""
        rss = rss_mb(child.pid) if self.max_memory_per_child is not None else None
        why = None
        if child.jobs >= self.max_jobs_per_child:
            why = f"it ran {child.jobs} jobs (max_jobs_per_child)"
        elif rss is not None and self.max_memory_per_child is not None and rss > self.max_memory_per_child:
            why = f"it uses {rss:.0f} MB (max_memory_per_child={self.max_memory_per_child:g})"
        if why is None and not self._closed and len(self._idle) < self.size and child.is_alive():
            self._idle.append(child)
            return
        if why is not None:
            log.info("replacing child process %d: %s", child.pid, why)
        await child.close()

    async def close(self) -> None:
        """Stop the idle children (busy ones stop with their job's cancellation)."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(c.close() for c in idle), return_exceptions=True)
