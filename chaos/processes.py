"""The supervisor: starts `python -m taskyard` processes for a run, signals them, notices
deaths it did not cause, and writes everything it did to the fault log.

Clock skew is applied with libfaketime (Debian's `faketime` package) preloaded into the
process itself, with the monotonic clock left alone, rather than through the `faketime`
wrapper: the wrapper forks, so its pid would not be the process the harness signals.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaos.checker import Fault
from chaos.history import HISTORY_DIR_ENV, PROCESS_ENV, SKEW_ENV

__all__ = ("ROOT", "Proc", "ProcSpec", "Supervisor", "libfaketime")

ROOT = Path(__file__).resolve().parents[1]


def libfaketime() -> str | None:
    """Path of libfaketime (from the `faketime` package), or None when it is not installed."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    return found[0] if found else None


@dataclass(frozen=True)
class ProcSpec:
    """A process of a topology: `taskyard --app APP ARGS...` under the harness's name `name`.

    `roles` says what it does (for fault targeting): worker, scheduler, maintenance, api.
    `url` overrides the backend URL (a fault proxy in front of the server); `skew` runs its
    clock that many seconds off.
    """

    name: str
    args: tuple[str, ...]
    roles: frozenset[str]
    app: str = "chaos.app:app"
    http: bool = False
    skew: float = 0.0
    url: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    module: str = "taskyard"  # `chaos.producer` for the producer

    @property
    def command(self) -> list[str]:
        """The argv (without interpreter) of this process."""
        if self.module != "taskyard":
            return ["-m", self.module, "--app", self.app, *self.args]
        return ["-m", "taskyard", "--app", self.app, *self.args]


@dataclass
class Proc:
    """A running (or dead) process of a spec."""

    spec: ProcSpec
    popen: subprocess.Popen[bytes]
    started: float
    port: int | None = None
    stopped: bool = False  # SIGSTOPped right now
    expected_exit: bool = False  # the harness asked it to stop

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Supervisor:
    """The processes of one run, their logs, and the fault log."""

    workdir: Path
    base_env: dict[str, str]
    faults: list[Fault] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)

    def start(self, spec: ProcSpec, *, port: int | None = None) -> Proc:
        """Start a process of `spec` (HTTP on `port` when the spec serves HTTP)."""
        env = {**os.environ, **self.base_env, **dict(spec.env)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env[PROCESS_ENV] = spec.name
        env[HISTORY_DIR_ENV] = str(self.workdir / "history")
        if spec.url:
            env["TASKYARD_BACKEND"] = spec.url
        if spec.http and port:
            env["TASKYARD_HTTP__ENABLED"] = "true"
            env["TASKYARD_HTTP__PORT"] = str(port)
        if spec.skew:
            lib = libfaketime()
            if lib is None:
                raise RuntimeError("clock skew needs libfaketime: apt-get install faketime")
            env["LD_PRELOAD"] = lib
            env["FAKETIME"] = f"{spec.skew:+.0f}"
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
            env["FAKETIME_NO_CACHE"] = "1"
            env[SKEW_ENV] = str(spec.skew)
        log = open(self.workdir / "logs" / f"{spec.name}.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            popen = subprocess.Popen(
                [sys.executable, *spec.command], cwd=self.workdir, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        finally:
            log.close()
        proc = Proc(spec, popen, time.time(), port)
        self.procs.append(proc)
        if spec.skew:
            self.faults.append(Fault("skew", proc.started, proc.pid, spec.name, detail=f"{spec.skew:+.0f}s"))
        return proc

    def live(self, role: str | None = None) -> list[Proc]:
        """Live processes (with `role`)."""
        return [p for p in self.procs if p.alive and (role is None or role in p.spec.roles)]

    def by_pid(self, pid: int) -> Proc | None:
        """The live process with `pid`."""
        return next((p for p in self.procs if p.pid == pid and p.alive), None)

    def signal(self, proc: Proc, sig: signal.Signals, *, until: float | None = None) -> None:
        """Send `sig` to `proc` and log it (SIGKILL: kill, SIGSTOP: stop, SIGTERM: term)."""
        if not proc.alive:
            return
        kind = {signal.SIGKILL: "kill", signal.SIGSTOP: "stop", signal.SIGTERM: "term"}.get(sig)
        if sig is signal.SIGKILL or sig is signal.SIGTERM:
            proc.expected_exit = True
        if sig is signal.SIGCONT:
            proc.stopped = False
            for i in range(len(self.faults) - 1, -1, -1):  # close the open pause
                f = self.faults[i]
                if f.kind == "stop" and f.pid == proc.pid and f.until is None:
                    self.faults[i] = Fault(f.kind, f.at, f.pid, f.process, time.time(), f.detail)
                    break
        os.kill(proc.pid, sig)
        if sig is signal.SIGSTOP:
            proc.stopped = True
        if kind is not None:
            self.faults.append(Fault(kind, time.time(), proc.pid, proc.spec.name, until))
        if sig is signal.SIGKILL:
            proc.popen.wait()

    def restart(self, proc: Proc) -> Proc:
        """Start a new process of `proc`'s spec (same HTTP port)."""
        return self.start(proc.spec, port=proc.port)

    def reap(self) -> list[Proc]:
        """Processes that died on their own (non-zero exit) since the last call, logged as
        `exit` faults."""
        dead = []
        for proc in self.procs:
            if not proc.alive and not proc.expected_exit:
                proc.expected_exit = True  # report each once
                if proc.popen.returncode == 0:
                    continue  # a producer that finished its work
                self.faults.append(Fault("exit", time.time(), proc.pid, proc.spec.name,
                                         detail=f"exit code {proc.popen.returncode}"))
                dead.append(proc)
        return dead

    def stop_all(self, timeout: float = 20.0) -> dict[str, int | None]:
        """SIGCONT what is paused, SIGTERM everything, SIGKILL what is left after `timeout`;
        returns the exit code of each process that was still running (`name:pid`), leaving out
        those started in the last 5 s (a SIGTERM before a server installs its handlers kills it)."""
        running = self.live()
        settled = [p for p in running if time.time() - p.started >= 5]
        for proc in running:
            if proc.stopped:
                self.signal(proc, signal.SIGCONT)
            proc.expected_exit = True
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.popen.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        return {f"{p.spec.name}:{p.pid}": p.popen.returncode for p in settled}
