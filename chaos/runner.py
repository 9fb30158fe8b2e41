"""The runner: one scenario (backend x topology x fault x seed) end to end, and the CLI.

A run: open an isolated store; put a `FaultProxy` in front of it per process when the fault
is a network one; start the topology's processes; start the producer; carry out the seeded
fault timeline for `seconds`; heal everything; pause the schedules (the end of the checked
fire window); wait until every job is terminal; stop the processes (SIGTERM, drain); read
the final store through the public API; check the histories against it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from chaos import app as chaos_app
from chaos import report as tables
from chaos.checker import CheckInput, Report, StoredJob, Violation, check
from chaos.faults import FAULTS, NETWORK_FAULTS, Nemesis, plan
from chaos.history import read_dir
from chaos.processes import ROOT, Proc, ProcSpec, Supervisor
from chaos.proxy import FaultProxy
from chaos.stores import KINDS, Store, StoreUnavailable, open_store, with_address
from chaos.topology import TOPOLOGIES, Step, build, v2_of
from taskyard import Taskyard
from taskyard.core.job import Job
from taskyard.errors import BackendError

T = TypeVar("T")

__all__ = ("DEFAULT_MATRIX", "TIMING", "Outcome", "Scenario", "main", "run_scenario")

#: Chaos timing (docs/reliability.md): short leases so a run of seconds sees recoveries.
TIMING = {"lease": 5.0, "heartbeat": 1.0, "rescue": 1.0, "ttl": 3.0, "poll": 0.5}
#: Leadership leases a leader fault looks for, in order: the scheduler's own lease, the single
#: lease older trees shared between scheduler and maintenance, then maintenance's.
LEASES = ("scheduler", "default", "maintenance")
#: Settings every process of a run gets.
BASE_ENV = {
    "TASKYARD_WORKER__LEASE": str(TIMING["lease"]),
    "TASKYARD_WORKER__HEARTBEAT_INTERVAL": str(TIMING["heartbeat"]),
    "TASKYARD_WORKER__POLL_INTERVAL": str(TIMING["poll"]),
    "TASKYARD_WORKER__DRAIN_TIMEOUT": "2",
    "TASKYARD_WORKER__CONCURRENCY": "8",
    "TASKYARD_MAINTENANCE__RESCUE_INTERVAL": str(TIMING["rescue"]),
    "TASKYARD_MAINTENANCE__PRUNE_INTERVAL": "86400",
    "TASKYARD_MAINTENANCE__RETENTION": '{"completed": {"keep_last": null, "max_age": null},'
    ' "failed": {"keep_last": null, "max_age": null}, "cancelled": {"keep_last": null, "max_age": null}}',
    "TASKYARD_SCHEDULER__LEADER_TTL": str(TIMING["ttl"]),
    "TASKYARD_HTTP__ENABLED": "false",
    "TASKYARD_HTTP__AUTH_ENABLED": "false",
    "TASKYARD_LOGGING__FORMAT": "plain",
    "PYTHONUNBUFFERED": "1",
}
#: The curated matrix `python -m chaos` runs when no --topology/--fault is given.
DEFAULT_MATRIX: list[tuple[str, str, str | None]] = [
    ("scale-out", "worker-kill", None),
    ("scale-out", "worker-kill", "default"),
    ("single", "handlers", None),
    ("scale-out", "poison", None),
    ("scale-out", "isolation", None),
    ("replicas", "leader-stop", None),
    ("roles", "leader-kill", None),
    ("scale-out", "producer-kill", None),
    ("scale-out", "mixed", None),
    ("schedulers", "leader-kill", None),
    ("workers-first", "leader-stop", None),
    ("workers-last", "leader-kill", None),
    ("workers-between", "leader-kill", None),
    ("scale-out", "clock-skew", None),
    ("schedulers", "clock-skew", None),
    ("rolling", "none", None),
    ("scale-out", "backend-restart", None),
    ("scale-out", "net-cut", None),
    ("scale-out", "net-slow", None),
    ("scale-out", "net-blackhole", None),
]


@dataclass(frozen=True)
class Scenario:
    """One run: where, how, what breaks, and the seed that replays it."""

    backend: str
    topology: str
    fault: str
    seed: int = 1
    seconds: float = 20.0
    rate: float = 30.0
    mix: str | None = None  # the producer's workload; None: from the fault

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.topology}-{self.fault}-s{self.seed}" + (f"-{self.mix}" if self.mix else "")

    @property
    def workload(self) -> str:
        if self.mix:
            return self.mix
        if self.fault in ("poison", "isolation"):
            return self.fault
        return "handlers" if self.fault in ("handlers", "mixed") else "storm"

    def applicable(self) -> str | None:
        """Why this scenario cannot run, or None."""
        if self.backend == "sqlite" and (self.fault in NETWORK_FAULTS or self.fault == "backend-restart"):
            return "SQLite has no server or network to break"
        if self.backend == "sqlite" and self.fault == "clock-skew" and not os.environ.get("CHAOS_SQLITE_SKEW"):
            # The store has no clock of its own: processes sharing the file share one kernel
            # clock, so only libfaketime can skew them (docs/reliability.md, known failure 2;
            # CHAOS_SQLITE_SKEW=1 runs it anyway).
            return "processes sharing a SQLite file share one machine's clock"
        if self.backend == "mysql" and self.fault == "backend-restart":
            return "the chaos harness starts no MySQL server of its own yet (shared server only)"
        return None


@dataclass
class Outcome:
    """A finished run: the scenario, the checker's report and the run's own figures."""

    scenario: Scenario
    report: Report
    faults_injected: int = 0
    takeovers: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    workdir: str = ""
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None  # the harness itself failed (no verdict)
    revision: str = ""

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.error is None and self.report.ok

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": {**asdict(self.scenario), "id": self.scenario.id, "workload": self.scenario.workload},
            "ok": self.ok, "skipped": self.skipped, "error": self.error, "faults_injected": self.faults_injected,
            "takeovers": self.takeovers, "seconds": round(self.seconds, 1), "workdir": self.workdir,
            "exit_codes": self.exit_codes, "revision": self.revision, "report": self.report.to_json(),
        }


def revision() -> str:
    """The taskyard code a run tests: the commit, `+dirty` when src/ has uncommitted changes,
    and where `taskyard` was imported from when it is not this tree's src/."""
    import subprocess

    import taskyard

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = "+dirty" if git("status", "--porcelain", "--", "src") else ""
    source = Path(taskyard.__file__).resolve().parents[1]
    elsewhere = "" if source == ROOT / "src" else f" (taskyard from {source})"
    return f"{commit}{dirty}{elsewhere}"


def stored(job: Job) -> StoredJob:
    """The checker's view of a job."""
    return StoredJob(
        id=job.id, task=job.task, status=job.status.value, attempt=job.attempt,
        max_attempts=job.max_attempts, run_at=job.run_at.timestamp(),
        created_at=job.created_at.timestamp(), unique_key=job.unique_key, result=job.result,
        error_types=tuple(e.type for e in job.errors),
        errors=tuple((e.attempt, e.type, e.at.timestamp()) for e in job.errors),
    )


async def retrying(make: Callable[[], Awaitable[T]], attempts: int = 20) -> T:
    """`await make()`, retried through a backend outage (the harness's own connection may be
    stale after a server restart: the first call on it fails)."""
    for _ in range(attempts - 1):
        try:
            return await make()
        except BackendError:
            await asyncio.sleep(0.5)
    return await make()


async def all_jobs(app: Taskyard) -> list[Job]:
    """Every job in the store, through the public API."""
    jobs: list[Job] = []
    cursor = None
    while True:
        page = await retrying(functools.partial(app.alist_jobs, limit=1000, cursor=cursor))
        jobs.extend(page.jobs)
        cursor = page.next_cursor
        if not cursor:
            return jobs


class Run:
    """The moving parts of one scenario while it runs."""

    def __init__(self, scenario: Scenario, workdir: Path, store: Store, app: Taskyard) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.store = store
        self.app = app
        self.supervisor = Supervisor(workdir, dict(BASE_ENV))
        self.proxies: dict[str, FaultProxy] = {}
        self.producers: list[Proc] = []
        self.producer_seq = 0
        self.ports: dict[str, int] = {}
        self.producer_url: str | None = None
        self.disruptions: list[tuple[float, float]] = []  # a leading process died on its own
        self.deadline = 0.0

    async def leader_pid(self, lease: str | None = None) -> int | None:
        """Pid of the process holding `lease` (default: the first of `LEASES` held)."""
        for name in (lease,) if lease else LEASES:
            info = await self.app.backend.leader_get(name=name)
            if info is not None:
                parts = info.holder.split(":")
                return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None
        return None

    async def url_for(self, name: str) -> str | None:
        """The backend URL of process `name`: its own proxy under a network fault."""
        if self.scenario.fault not in NETWORK_FAULTS or self.store.address is None:
            return None
        if name not in self.proxies:
            proxy = FaultProxy(*self.store.address)
            await proxy.start()
            self.proxies[name] = proxy
        return with_address(self.store.url, "127.0.0.1", self.proxies[name].port)

    async def start(self, spec: ProcSpec) -> Proc:
        spec = replace(spec, url=await self.url_for(spec.name) or self.store.url)
        if spec.http and spec.name not in self.ports:
            from chaos.stores import free_port

            self.ports[spec.name] = free_port()
        return self.supervisor.start(spec, port=self.ports.get(spec.name))

    def start_producer(self, app_spec: str = "chaos.app:app", mix: str | None = None, seconds: float | None = None) -> None:
        self.producer_seq += 1
        remaining = max((seconds if seconds is not None else self.deadline - time.time()), 0.5)
        spec = ProcSpec(
            f"producer-{self.producer_seq}",
            ("--seconds", f"{remaining:.1f}", "--rate", str(self.scenario.rate),
             "--seed", f"{self.scenario.seed}{self.producer_seq:03d}", "--mix", mix or self.scenario.workload),
            frozenset({"producer"}), app=app_spec, module="chaos.producer",
            url=self.producer_url or self.store.url,
        )
        self.producers.append(self.supervisor.start(spec))

    def restart_producer(self) -> None:
        if time.time() < self.deadline - 0.5:
            last = self.producers[-1].spec
            self.start_producer(last.app, last.args[last.args.index("--mix") + 1])

    def current_producer(self) -> Proc | None:
        live = [p for p in self.producers if p.alive]
        return live[-1] if live else None

    async def babysit(self, stop: asyncio.Event) -> None:
        """Restart processes that died on their own (a handler's os._exit, a crash)."""
        while not stop.is_set():
            for proc in self.supervisor.reap():
                if "scheduler" in proc.spec.roles:
                    self.disruptions.append((time.time() - 1, time.time() + TIMING["ttl"] + 3))
                if "producer" not in proc.spec.roles:
                    await asyncio.sleep(0.5)
                    if not stop.is_set():
                        await self.start(proc.spec)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)

    async def roll(self, t0: float) -> None:
        """Rolling deploy: replace each process by its v2 twin, one at a time (SIGTERM, drain)."""
        olds = [p for p in self.supervisor.live() if "producer" not in p.spec.roles]
        step = self.scenario.seconds * 0.6 / max(len(olds), 1)
        await asyncio.sleep(max(t0 + self.scenario.seconds * 0.2 - time.time(), 0))
        for i, old in enumerate(olds):
            await self.start(v2_of(old.spec))
            if i == 0:
                self.start_producer("chaos.app:app_v2", "v2")
            at = time.time()
            self.supervisor.signal(old, signal.SIGTERM)
            await asyncio.to_thread(_wait, old, 15)
            if "scheduler" in old.spec.roles:  # its leases pass on: a takeover window
                self.disruptions.append((at, time.time() + TIMING["ttl"] + 2))
            await asyncio.sleep(step)

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.close()


def _wait(proc: Proc, timeout: float) -> None:
    with contextlib.suppress(Exception):
        proc.popen.wait(timeout)


async def _quiesce(app: Taskyard, timeout: float) -> None:
    """Wait until no job is pending or running and none is scheduled within the next 10 s
    (a job scheduled further ahead would outlast the run: the checker reports it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(Exception):
            counts = await app.acounts()
            busy = sum(c.get(s, 0) for c in counts.values() for s in ("pending", "running"))
            if busy == 0:
                soon = time.time() + 10
                page = await app.alist_jobs(status="scheduled", limit=1000)
                if not any(job.run_at.timestamp() <= soon for job in page.jobs):
                    return
        await asyncio.sleep(0.5)


async def run_scenario(scenario: Scenario, root: Path) -> Outcome:
    """Run one scenario in a fresh directory under `root` and check it."""
    why = scenario.applicable()
    if why:
        return Outcome(scenario, Report(), skipped=why)
    workdir = root / scenario.id
    for sub in ("history", "logs", "server"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    started, tested = time.time(), revision()
    owned = scenario.fault == "backend-restart"
    async with open_store(scenario.backend, workdir / "server", owned=owned) as store:
        app = chaos_app.build(2, store.url)
        await app.open()
        run = Run(scenario, workdir, store, app)
        stop = asyncio.Event()
        babysitter = asyncio.create_task(run.babysit(stop))
        try:
            nemesis, window = await _drive(run)
        finally:
            stop.set()
            await babysitter
            codes = await asyncio.to_thread(run.supervisor.stop_all)
            await run.close()
        jobs = [stored(j) for j in await all_jobs(app)]
        await app.aclose()
    report = check(_check_input(run, nemesis, window, jobs))
    for name, code in codes.items():
        if code != 0 and not name.startswith("producer"):
            report.violations.append(Violation("unclean-exit", f"{name} exited {code} after SIGTERM (drain)"))
    outcome = Outcome(
        scenario, report,
        faults_injected=nemesis.injected + sum(f.kind in ("exit", "skew") for f in run.supervisor.faults),
        takeovers=nemesis.takeovers, seconds=time.time() - started, workdir=str(workdir),
        exit_codes=codes, revision=tested,
    )
    tables.write_run(outcome.to_json(), workdir)
    return outcome


async def _drive(run: Run) -> tuple[Nemesis, tuple[float, float]]:
    """Start the topology and the producer, play the fault timeline, heal, let the schedulers
    catch up, pause the schedules and wait for the jobs to settle; returns the nemesis and the
    fire window to check."""
    scenario, app = run.scenario, run.app
    topology = build(scenario.topology)
    if scenario.fault == "clock-skew":
        topology = _skewed(topology)
    for step in topology:
        await asyncio.sleep(step.pause)
        await run.start(step.spec)
    await _wait_for_leader(run, topology)
    t0 = time.time()
    run.deadline = t0 + scenario.seconds
    run.producer_url = await run.url_for("producer")
    run.start_producer()
    nemesis = Nemesis(
        run.supervisor, run.store, run.proxies, run.leader_pid, run.restart_producer,
        run.current_producer, ttl=TIMING["ttl"], seed=scenario.seed, leases=LEASES,
    )
    actions = plan(scenario.fault, scenario.seconds, scenario.seed, ttl=TIMING["ttl"], lease=TIMING["lease"])
    chores = [asyncio.create_task(nemesis.run(actions, t0))]
    if scenario.topology == "rolling":
        chores.append(asyncio.create_task(run.roll(t0)))
    await asyncio.sleep(max(run.deadline - time.time(), 0))
    await asyncio.wait_for(asyncio.gather(*chores), timeout=60)
    await nemesis.settle()
    for proxy in run.proxies.values():
        proxy.set_mode("pass")
    for proc in run.supervisor.live():
        if proc.stopped:
            run.supervisor.signal(proc, signal.SIGCONT)
    # Leave the schedulers a takeover's time to catch up on what the faults made them miss.
    await asyncio.sleep(TIMING["ttl"] + 3)
    for schedule in await retrying(app.schedules.alist):
        await retrying(functools.partial(app.schedules.apause, schedule.name))
    window = (t0 + 3.0, time.time() - 1.5)
    for proc in run.producers:
        if proc.alive:
            proc.expected_exit = True
            proc.popen.terminate()
    # A bound, not a pause: it returns as soon as every job is terminal. Generous, because a
    # loaded machine (CI beside other work) starts each fresh child process in seconds.
    await _quiesce(app, TIMING["lease"] + TIMING["rescue"] + 90)
    return nemesis, window


def _check_input(run: Run, nemesis: Nemesis, window: tuple[float, float], jobs: list[StoredJob]) -> CheckInput:
    """What the checker gets: histories, final store, fault log, policies and fire windows."""
    schedules = dict(chaos_app.SCHEDULES)
    if run.scenario.topology == "rolling":
        schedules.update(chaos_app.V2_SCHEDULES)
    data = CheckInput(
        events=read_dir(run.workdir / "history"), jobs=jobs, faults=run.supervisor.faults,
        policies=chaos_app.RETRIES, expected_failures=chaos_app.EXPECTED_FAILURES,
        schedules=schedules, window=window, disruptions=[*nemesis.disruptions, *run.disruptions],
    )
    # v2's schedule only exists from the first v2 scheduler on: check it from then.
    return _rolling_window(data, run) if run.scenario.topology == "rolling" else data


def _rolling_window(data: CheckInput, run: Run) -> CheckInput:
    """v2's schedule exists from the first v2 scheduler's start on: check it from then."""
    v2 = [p.started for p in run.supervisor.procs if p.spec.app.endswith("app_v2") and "scheduler" in p.spec.roles]
    if not v2 or data.window is None:
        return data
    windows = {name: (min(v2) + 5.0, data.window[1]) for name in chaos_app.V2_SCHEDULES}
    return replace(data, schedule_windows=windows)


def _skewed(steps: list[Step]) -> list[Step]:
    """The topology with its first two worker processes 2 minutes ahead and behind, and (where
    there are scheduler replicas) its second scheduler replica 2 minutes ahead."""
    worker_skews = [120.0, -120.0]
    schedulers = 0
    out = []
    for step in steps:
        if worker_skews and "worker" in step.spec.roles and "scheduler" not in step.spec.roles:
            step = Step(replace(step.spec, skew=worker_skews.pop(0)), step.pause)
        elif step.spec.roles == {"scheduler"}:
            schedulers += 1
            if schedulers == 2:
                step = Step(replace(step.spec, skew=120.0), step.pause)
        out.append(step)
    return out


async def _wait_for_leader(run: Run, topology: list[Step]) -> None:
    if not any({"scheduler", "maintenance"} & s.spec.roles for s in topology):
        return
    deadline = time.time() + 60
    while time.time() < deadline:
        with contextlib.suppress(Exception):
            if await run.leader_pid() is not None:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no leader was elected within 60 s; see {run.workdir / 'logs'}")


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    """The scenarios the command line asks for."""
    seconds = args.minutes * 60 if args.minutes else args.seconds
    backends = args.backend or list(KINDS)
    if args.topology or args.fault:
        rows = [(t, f, args.mix) for t in (args.topology or ["scale-out"]) for f in (args.fault or ["worker-kill"])]
    else:
        rows = DEFAULT_MATRIX
    return [Scenario(b, t, f, seed=args.seed, seconds=seconds, mix=m) for b in backends for t, f, m in rows]


_STOP: list[int] = []  # signals received: stop after the current scenario (its cleanup runs)


def _interrupted(signum: int, frame: object) -> None:
    _STOP.append(signum)
    if len(_STOP) > 1:
        raise KeyboardInterrupt  # a second signal: now


def main(argv: list[str] | None = None) -> int:
    """`python -m chaos`: run scenarios, print and write the results table; 1 if any failed."""
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--backend", action="append", choices=KINDS, help="repeatable; default: all of them")
    parser.add_argument("--topology", action="append", choices=sorted(TOPOLOGIES), help="repeatable")
    parser.add_argument("--fault", action="append", choices=sorted(FAULTS), help="repeatable")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "1")))
    parser.add_argument("--seconds", type=float, default=20.0, help="fault window per scenario")
    parser.add_argument("--minutes", type=float, default=0.0, help="soak: fault window in minutes")
    parser.add_argument("--mix", choices=["storm", "handlers", "default", "poison", "v2"], default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--list", action="store_true", help="list topologies and faults, then exit")
    args = parser.parse_args(argv)
    if args.list:
        print("topologies:", ", ".join(TOPOLOGIES))
        for name, what in FAULTS.items():
            print(f"  {name:16} {what}")
        return 0
    # A signal ends the matrix after the current scenario, whose processes are then stopped.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out / stamp
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="chaos-", dir=out))
    results: list[Outcome] = []
    for scenario in scenarios(args):
        if _STOP:
            print("stopped by a signal", flush=True)
            break
        print(f"== {scenario.id} ({scenario.seconds:.0f}s of {scenario.fault})", flush=True)
        try:
            outcome = asyncio.run(run_scenario(scenario, root))
        except StoreUnavailable as exc:
            outcome = Outcome(scenario, Report(), skipped=str(exc))
        except Exception as exc:  # one broken run must not end the matrix
            outcome = Outcome(scenario, Report(), error=f"{type(exc).__name__}: {exc}")
        results.append(outcome)
        print(tables.summary_line(outcome.to_json()), flush=True)
    rows = [o.to_json() for o in results]
    markdown = tables.write_results(rows, out)
    print(markdown)
    print(f"results: {out}/results.md and results.json; per-run logs and histories under {root}")
    return 0 if all(o.ok or (o.skipped and not o.error) for o in results) else 1


if __name__ == "__main__":
    sys.exit(main())
