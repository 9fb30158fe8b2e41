"""Running `taskyard` in subprocesses and reading what they did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def taskyard_process(
    args: Sequence[str], *, env: dict[str, str], log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `python -m taskyard ARGS` from the repository root with extra `env`."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "taskyard", *args]
    if log_path is None:
        return subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
    with open(log_path, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)


#: Debian's libfaketime; preloaded directly (not through the `faketime` wrapper, which forks)
#: so the process started is the worker itself and receives the test's signals.
LIBFAKETIME = next(iter(Path("/usr/lib").glob("*/faketime/libfaketime.so.1")), None)


def skewed_env(offset: str) -> dict[str, str]:
    """Environment that runs a process `offset` away from the true time (e.g. "+2m")."""
    if LIBFAKETIME is None:
        raise RuntimeError("libfaketime is missing (Debian package faketime)")
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": offset, "DONT_FAKE_MONOTONIC": "1"}


def is_running(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie (dead, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Send `sig` and wait for the exit code (kill after `timeout`)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode


def read_runlog(path: Path) -> list[tuple[str, int, int, str]]:
    """Lines `<job id> <attempt> <pid> <tag>` written by tests/apps/worker_app.py."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        job_id, attempt, pid, tag = line.split()
        rows.append((job_id, int(attempt), int(pid), tag))
    return rows
