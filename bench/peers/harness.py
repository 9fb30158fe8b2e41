"""The measuring kit shared by every benchmarked system: a probe, worker processes, statistics.

Standard library only: the same file runs under taskyard's venv and the peers' venv.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROBE_ENV = "BENCH_PROBE_DIR"
FLUSH_SECONDS = 0.05


class Probe:
    """Counts handler runs in one process and publishes the totals to a file every 50 ms.

    A no-op job's handler calls `hit()`; the cost is a lock and a clock read, so the probe
    does not add a round trip to any system. `sent_at` (epoch seconds at enqueue) turns a hit
    into a latency sample.
    """

    def __init__(self, directory: str) -> None:
        self._path = Path(directory) / f"{os.getpid()}.json"
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._count = 0
        self._first: float | None = None
        self._last: float | None = None
        self._latencies: list[float] = []
        self._written = -1
        self._thread = threading.Thread(target=self._flush_loop, name="bench-probe", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def hit(self, sent_at: float | None = None) -> None:
        """Record one handler run (now), and its enqueue-to-start latency when `sent_at`."""
        now = time.time()
        with self._lock:
            self._count += 1
            if self._first is None:
                self._first = now
            self._last = now
            if sent_at is not None:
                self._latencies.append(now - sent_at)

    def _flush_loop(self) -> None:
        # Daemon thread owned by the probe for the life of the worker process.
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def flush(self) -> None:
        """Publish the totals if they changed (also at exit: burst workers end on their own)."""
        # One writer at a time, so an older snapshot can never replace a newer file.
        with self._write_lock:
            with self._lock:
                if self._count == self._written:
                    return
                doc = {"count": self._count, "first": self._first, "last": self._last,
                       "latencies": list(self._latencies)}
                self._written = self._count
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc))
            tmp.replace(self._path)


_probes: dict[str, Probe] = {}
_probes_lock = threading.Lock()


def hit(sent_at: float | None = None) -> None:
    """Record a handler run on this process's probe (directory from `BENCH_PROBE_DIR`).

    The probe is created lazily, after any fork, so each worker child has its own file.
    """
    directory = os.environ[PROBE_ENV]
    key = f"{os.getpid()}:{directory}"
    probe = _probes.get(key)
    if probe is None:
        with _probes_lock:
            probe = _probes.get(key) or Probe(directory)
            _probes[key] = probe
    probe.hit(sent_at)


@dataclass
class Tally:
    """What the probes of all worker processes recorded so far."""

    count: int = 0
    first: float | None = None
    last: float | None = None
    latencies: list[float] = field(default_factory=list)

    def rate(self) -> float | None:
        """Jobs per second from the first handler start to the last one."""
        if self.first is None or self.last is None or self.count < 2 or self.last <= self.first:
            return None
        return (self.count - 1) / (self.last - self.first)


def read_tally(directory: str | Path) -> Tally:
    """Sum the probe files in `directory`."""
    tally = Tally()
    for path in Path(directory).glob("*.json"):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # replaced while we read it; the next poll sees it
        tally.count += doc["count"]
        tally.latencies.extend(doc["latencies"])
        if doc["first"] is not None:
            tally.first = doc["first"] if tally.first is None else min(tally.first, doc["first"])
        if doc["last"] is not None:
            tally.last = doc["last"] if tally.last is None else max(tally.last, doc["last"])
    return tally


class BenchTimeout(RuntimeError):
    """The workers did not run the expected number of jobs in time."""


def wait_for(directory: str | Path, count: int, *, timeout: float = 180.0,
             procs: Sequence[subprocess.Popen[bytes]] = ()) -> Tally:
    """Poll the probes until `count` handler runs are recorded (or fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        tally = read_tally(directory)
        if tally.count >= count:
            return tally
        dead = [p for p in procs if p.poll() is not None and p.returncode not in (0, None)]
        if dead:
            raise BenchTimeout(f"worker exited with {dead[0].returncode} after {tally.count}/{count} jobs")
        if procs and all(p.poll() is not None for p in procs):
            time.sleep(2 * FLUSH_SECONDS)  # a last flush may still be landing
            tally = read_tally(directory)
            if tally.count >= count:
                return tally
            raise BenchTimeout(f"every worker exited (0) after {tally.count}/{count} jobs")
        if time.monotonic() > deadline:
            raise BenchTimeout(f"only {tally.count}/{count} jobs ran within {timeout:.0f}s")
        time.sleep(0.02)


@contextlib.contextmanager
def probe_dir() -> Iterator[str]:
    """A fresh directory for one measurement's probe files."""
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as directory:
        yield directory


@contextlib.contextmanager
def workers(commands: Sequence[Sequence[str]], *, probe: str, cwd: str | Path | None = None,
            env: dict[str, str] | None = None, log: str | Path | None = None,
            ) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run worker processes for the duration of the block, then stop them (TERM, then KILL)."""
    full_env = {**os.environ, **(env or {}), PROBE_ENV: probe}
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    procs = [subprocess.Popen(list(cmd), cwd=cwd, env=full_env, stdout=out, stderr=out,
                              start_new_session=True) for cmd in commands]
    try:
        yield procs
    finally:
        for proc in procs:
            stop_process(proc)
        if log:
            out.close()  # type: ignore[union-attr]


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a worker and its children: SIGTERM to its process group, SIGKILL after `grace`."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(latencies: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99 in milliseconds."""
    return {f"p{q}": (None if (v := percentile(latencies, q)) is None else v * 1000)
            for q in (50, 95, 99)}


def median(values: Sequence[float | None]) -> float | None:
    """Median of the values that were measured."""
    real = [v for v in values if v is not None]
    return statistics.median(real) if real else None


def paced(count: int, interval: float) -> Iterator[int]:
    """Yield 0..count-1, one every `interval` seconds on an absolute schedule (no drift)."""
    start = time.perf_counter()
    for i in range(count):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield i


def redis_store_bytes(url: str, match: str = "*") -> int:
    """Sum of `MEMORY USAGE` over the keys of `url`'s db that match `match`.

    Per key, so other tenants of a shared server do not count (its `used_memory` moves with
    everyone's writes). Needs redis-py, which every venv running a Redis system has.
    """
    import redis

    client = redis.Redis.from_url(url)
    try:
        total = 0
        keys = list(client.scan_iter(match=match, count=1000))
        for start in range(0, len(keys), 1000):
            pipe = client.pipeline(transaction=False)
            for key in keys[start:start + 1000]:
                pipe.memory_usage(key, samples=0)
            total += sum(v or 0 for v in pipe.execute())
        return total
    finally:
        client.close()


def redis_delete(url: str, match: str) -> None:
    """Delete the keys of `url`'s db that match `match` (a system's prefix on a shared db)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=match, count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
    finally:
        client.close()


def tree_rss(pid: int) -> int | None:
    """Resident bytes of process `pid` and all its descendants, from /proc (None if gone)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # Field 4 is the parent pid; the command name (field 2) may hold spaces, so split after it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, seen, todo = 0, False, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
                seen = True
        todo.extend(children.get(current, []))
    return total if seen else None


def store_per_10k(before: int | None, after: int | None, jobs: int) -> float | None:
    """Bytes per 10,000 queued jobs from the store's size before and after `jobs` enqueues."""
    if before is None or after is None or jobs <= 0:
        return None
    return (after - before) * 10_000 / jobs


class System:
    """What the round driver needs from one benchmarked system (a peer or taskyard)."""

    name: str
    #: config name -> human description, e.g. {"one": "celery -P solo", "best": "prefork -c 2"}
    configs: dict[str, str]

    def reset(self) -> None:
        """Remove every job and key this system left (its own db, prefix or schema)."""
        raise NotImplementedError

    def enqueue_single(self, n: int) -> float:
        """Enqueue `n` no-op jobs one call at a time; return the elapsed seconds."""
        raise NotImplementedError

    def enqueue_bulk(self, n: int) -> float:
        """Enqueue `n` no-op jobs the fastest way the system offers; return elapsed seconds."""
        raise NotImplementedError

    def send(self, sent_at: float | None) -> None:
        """Enqueue one no-op job carrying its enqueue time."""
        raise NotImplementedError

    def worker_commands(self, config: str, *, drain: bool) -> list[list[str]]:
        """The worker processes to start for `config` (`drain`: for a backlog, not idle)."""
        raise NotImplementedError

    def start_workers(self, config: str, *, drain: bool, probe: str, cwd: str | Path | None,
                      env: dict[str, str] | None, log: str | Path | None,
                      ) -> contextlib.AbstractContextManager[list[subprocess.Popen[bytes]]]:
        """Run this config's workers for the duration of a `with` block."""
        return workers(self.worker_commands(config, drain=drain), probe=probe, cwd=cwd,
                       env=env, log=log)

    def store_bytes(self) -> int | None:
        """Bytes this system's jobs take in its store now (None: not measurable)."""
        return None

    def close(self) -> None:
        """Release client connections."""


@dataclass
class RoundSizes:
    """How many jobs each workload uses."""

    single: int = 2_000
    drain: int = 10_000
    latency: int = 500
    interval: float = 0.010
    timeout: float = 240.0


def run_round(system: System, sizes: RoundSizes, *, cwd: str | Path | None = None,
              env: dict[str, str] | None = None, log: str | Path | None = None) -> dict[str, object]:
    """Run the workloads once against `system`; figures in jobs/s, seconds, bytes and ms.

    Besides the steady figures (enqueue, drain from the first handler start, idle latency):
    `drain_startup_<config>` counts the drain from the spawn of the workers to the last
    handler start; `worker_ready` is the time from spawning one idle-mode worker, with one
    job already queued, to that job's handler start; `rss_idle` sums the resident memory of
    that worker's process tree once it has gone idle after the latency workload;
    `store_per_10k` is what 10,000 queued jobs add to the store.
    """
    out: dict[str, object] = {}
    errors: list[str] = []
    system.reset()
    try:
        out["enqueue_single"] = sizes.single / system.enqueue_single(sizes.single)
        system.reset()
        bulk: list[float] = []
        for index, config in enumerate(system.configs):
            before = system.store_bytes() if index == 0 else None
            bulk.append(sizes.drain / system.enqueue_bulk(sizes.drain))
            if index == 0:
                out["store_per_10k"] = store_per_10k(before, system.store_bytes(), sizes.drain)
            try:
                with probe_dir() as d:
                    spawned = time.time()
                    with system.start_workers(config, drain=True, probe=d, cwd=cwd, env=env,
                                              log=log) as procs:
                        tally = wait_for(d, sizes.drain, timeout=sizes.timeout, procs=procs)
                out[f"drain_{config}"] = tally.rate()
                if tally.last is not None and tally.last > spawned:
                    out[f"drain_startup_{config}"] = sizes.drain / (tally.last - spawned)
            except BenchTimeout as exc:
                errors.append(f"drain_{config}: {exc}")
            system.reset()
        out["enqueue_bulk"] = median(bulk)
        try:
            with probe_dir() as d:
                system.send(None)  # queued before the spawn: its start is the worker's "ready"
                spawned = time.time()
                with system.start_workers("one", drain=False, probe=d, cwd=cwd, env=env,
                                          log=log) as procs:
                    first = wait_for(d, 1, timeout=60, procs=procs)
                    if first.first is not None:
                        out["worker_ready"] = first.first - spawned
                    for _ in paced(sizes.latency, sizes.interval):
                        system.send(time.time())
                    tally = wait_for(d, sizes.latency + 1, timeout=60, procs=procs)
                    rss = [tree_rss(p.pid) for p in procs]
                    if procs and all(r is not None for r in rss):
                        out["rss_idle"] = sum(r for r in rss if r is not None)
            out["latency"] = latency_summary(tally.latencies)
        except BenchTimeout as exc:
            errors.append(f"latency: {exc}")
    finally:
        system.reset()
        system.close()
    if errors:
        out["errors"] = errors
    return out


def main_for(system_factory: type[System]) -> None:
    """Command line of a peer script: `python peer_x.py [--single N --drain N --latency N]`.

    Runs one round and prints its figures as one JSON line.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main_for.__doc__)
    parser.add_argument("--single", type=int, default=RoundSizes.single)
    parser.add_argument("--drain", type=int, default=RoundSizes.drain)
    parser.add_argument("--latency", type=int, default=RoundSizes.latency)
    parser.add_argument("--log", default=None)
    args = parser.parse_args()
    sizes = RoundSizes(single=args.single, drain=args.drain, latency=args.latency)
    system = system_factory()
    here = Path(__file__).resolve().parent
    result = run_round(system, sizes, cwd=here, env={"PYTHONPATH": str(here)}, log=args.log)
    result["configs"] = system.configs
    print(json.dumps(result))
