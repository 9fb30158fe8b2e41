"""Histories: every process of a run appends what it did to its own JSONL file.

One line per event, written with a single `os.write` on an `O_APPEND` descriptor, so a process
killed at any instant leaves whole lines behind (at worst a torn last line, which the reader
skips). Each event carries the wall time `t` of its process and that process's clock `skew`
(seconds, set by the harness when it runs the process under faketime), so `true_time()` can
put every event on one time line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = (
    "HISTORY_DIR_ENV",
    "PROCESS_ENV",
    "SKEW_ENV",
    "Event",
    "read_dir",
    "read_file",
    "record",
)

#: Directory the histories of a run go to (one file per process).
HISTORY_DIR_ENV = "CHAOS_HISTORY_DIR"
#: The harness's name for the process (`worker-2`, `producer`, ...), part of the file name.
PROCESS_ENV = "CHAOS_PROCESS"
#: Seconds this process's clock is ahead of the real one (negative: behind).
SKEW_ENV = "CHAOS_SKEW"

_fd: tuple[int, int] | None = None  # (pid, descriptor): reopened after a fork


def _descriptor() -> int | None:
    global _fd
    pid = os.getpid()
    if _fd is not None and _fd[0] == pid:
        return _fd[1]
    directory = os.environ.get(HISTORY_DIR_ENV)
    if not directory:
        return None
    name = os.environ.get(PROCESS_ENV, "process")
    path = Path(directory) / f"{name}-{pid}.jsonl"
    _fd = (pid, os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    return _fd[1]


def record(kind: str, **fields: Any) -> None:
    """Append one event of `kind` to this process's history (a no-op when none is configured)."""
    fd = _descriptor()
    if fd is None:
        return
    event = {
        "kind": kind,
        "t": time.time(),
        "pid": os.getpid(),
        "process": os.environ.get(PROCESS_ENV, "process"),
        "skew": float(os.environ.get(SKEW_ENV) or 0.0),
        **fields,
    }
    os.write(fd, (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode())


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a history."""

    kind: str
    t: float
    pid: int
    process: str
    skew: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def true_time(self) -> float:
        """The event's time on the harness's (unskewed) clock."""
        return self.t - self.skew

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the event beyond the common ones."""
        return self.data.get(key, default)

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Event:
        """An event from its decoded JSON line."""
        common = {"kind", "t", "pid", "process", "skew"}
        return cls(
            kind=str(raw["kind"]),
            t=float(raw["t"]),
            pid=int(raw.get("pid", 0)),
            process=str(raw.get("process", "")),
            skew=float(raw.get("skew", 0.0)),
            data={k: v for k, v in raw.items() if k not in common},
        )


def parse_lines(lines: Iterable[str]) -> Iterator[Event]:
    """Events from JSONL lines; a torn line (the process died mid-write) is skipped."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(raw, dict) and "kind" in raw and "t" in raw:
            yield Event.of(raw)


def read_file(path: Path) -> list[Event]:
    """The events of one history file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return list(parse_lines(f))


def read_dir(directory: Path) -> list[Event]:
    """Every event of a run, ordered by true time."""
    events: list[Event] = []
    for path in sorted(directory.glob("*.jsonl")):
        events.extend(read_file(path))
    events.sort(key=lambda e: e.true_time)
    return events
