"""The workflow chaos scenario: a fan-out of N steps and one fan-in step, run by real worker
processes that are SIGKILLed at random and restarted while the fan-out runs.

`python -m chaos.fanin --backend sqlite --children 1000` (`make chaos` runs it on every
backend). What must hold, checked from the handlers' histories and the final store:

* the workflow finishes, completed (every step's `max_rescues` is above the kills);
* every step's body ran to completion at least once, and more than once only when that job
  lost its worker (a `LeaseExpired` or `WorkerLost` error on the job explains each re-run);
* the fan-in step started after the last fan-out step's body finished, and ran to completion
  once (or, again, a lost worker explains a second run), seeing every fan-out result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos import history
from chaos.processes import ProcSpec, Supervisor
from chaos.stores import KINDS, open_store
from chaos.topology import WORKER_ARGS
from taskyard import Taskyard
from taskyard.context import JobContext
from taskyard.core.workflow import (
    Workflow,
    WorkflowDraft,
    WorkflowStatus,
)

__all__ = ("FanIn", "app", "build", "check", "main", "run")

#: Short leases so a killed worker's jobs come back within seconds.
ENV = {
    "TASKYARD_WORKER__LEASE": "4",
    "TASKYARD_WORKER__HEARTBEAT_INTERVAL": "1",
    "TASKYARD_WORKER__POLL_INTERVAL": "0.5",
    "TASKYARD_WORKER__DRAIN_TIMEOUT": "2",
    "TASKYARD_WORKER__CONCURRENCY": "8",
    "TASKYARD_MAINTENANCE__RESCUE_INTERVAL": "1",
    "TASKYARD_MAINTENANCE__PRUNE_INTERVAL": "86400",
    "TASKYARD_HTTP__ENABLED": "false",
    "TASKYARD_HTTP__AUTH_ENABLED": "false",
    "TASKYARD_LOGGING__FORMAT": "plain",
    "PYTHONUNBUFFERED": "1",
}
LOST = ("LeaseExpired", "WorkerLost")


def _record(kind: str, ctx: JobContext, **fields: Any) -> None:
    job = ctx.job
    history.record(kind, job=job.id, step=job.step, attempt=job.attempt, token=job.lease_token, **fields)


async def fetch(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    """A fan-out step: sleeps a little (so kills land mid-run), returns its index."""
    _record("start", ctx)
    await asyncio.sleep(payload["sleep"])
    _record("end", ctx, ok=True)
    return {"i": payload["i"]}


async def report(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    """The fan-in step: counts the fan-out results it is given."""
    _record("start", ctx)
    seen = len(ctx.results("fetch"))
    _record("end", ctx, ok=True, seen=seen)
    return {"seen": seen}


def build(backend: str | None = None) -> Taskyard:
    """The app the worker processes run (`--app chaos.fanin:app`)."""
    app = Taskyard(backend)
    # Losing a worker is not the step's failure: well above the kills a run makes.
    app.task("fanin.fetch", max_rescues=50)(fetch)
    app.task("fanin.report", max_rescues=50)(report)
    return app


app = build()


def draft(app: Taskyard, children: int, seed: int) -> WorkflowDraft:
    """Fan-out of `children` steps, then one fan-in step depending on all of them."""
    rng = random.Random(seed)
    wf = app.workflow("chaos-fan-in")
    fetched = wf.map("fanin.fetch", [{"i": i, "sleep": rng.uniform(0.05, 0.3)} for i in range(children)], name="fetch")
    wf.step("fanin.report", {}, name="report", after=fetched)
    return wf.draft()


@dataclass
class FanIn:
    """One run's figures and verdict."""

    backend: str
    children: int
    workers: int
    kills: int = 0
    seconds: float = 0.0
    status: str = ""
    reruns: list[str] = field(default_factory=list)  # steps whose body completed twice, with why
    rescued: int = 0  # steps that lost their worker at least once (a `LeaseExpired` error)
    violations: list[str] = field(default_factory=list)
    fan_in_runs: int = 0
    fan_in_seen: int = -1

    @property
    def ok(self) -> bool:
        return not self.violations


def check(result: FanIn, wf: Workflow, events: list[history.Event]) -> None:
    """Fill `result`'s verdict from the final workflow and the handlers' histories."""
    result.status = wf.status.value
    if wf.status is not WorkflowStatus.COMPLETED:
        result.violations.append(f"workflow ended {wf.status.value}, not completed: {wf.counts()}")
    ends: dict[str, list[float]] = defaultdict(list)
    starts: dict[str, list[float]] = defaultdict(list)
    seen: dict[str, int] = {}
    for e in events:
        job = e.get("job")
        if e.kind == "end" and e.get("ok"):
            ends[job].append(e.true_time)
            if e.get("seen") is not None:
                seen[job] = e.get("seen")
        elif e.kind == "start":
            starts[job].append(e.true_time)
    fan_out = [j for j in wf.steps if j.step != "report"]
    fan_in = next(j for j in wf.steps if j.step == "report")
    for job in wf.steps:
        n = len(ends[job.id])
        lost = [e for e in job.errors if e.type in LOST]
        result.rescued += bool(lost)
        if n == 0:
            result.violations.append(f"{job.step} ({job.id}) is {job.status.value} but its body never finished")
        elif n > 1:
            if len(lost) < n - 1:
                result.violations.append(f"{job.step} ({job.id}) finished {n} times with {len(lost)} lost worker(s)")
            result.reruns.append(f"{job.step}: {n} runs, {len(lost)} lost worker(s)")
    result.fan_in_runs = len(ends[fan_in.id])
    result.fan_in_seen = seen.get(fan_in.id, -1)
    last_fan_out = max((t for j in fan_out for t in ends[j.id]), default=0.0)
    if starts[fan_in.id] and min(starts[fan_in.id]) < last_fan_out:
        result.violations.append("the fan-in step started before the last fan-out step finished")
    if result.fan_in_seen != len(fan_out):
        result.violations.append(f"the fan-in step saw {result.fan_in_seen} results, not {len(fan_out)}")


async def run(backend: str, *, children: int, workers: int, seed: int, kill_every: float, root: Path,
              timeout: float = 240.0) -> FanIn:
    """One run on `backend`; see the module docstring."""
    workdir = root / f"fanin-{backend}-s{seed}"
    for sub in ("history", "logs", "server"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    result = FanIn(backend, children, workers)
    rng = random.Random(seed)
    async with open_store(backend, workdir / "server") as store:
        client = build(store.url)
        await client.open()
        try:
            await client.backend.migrate()
            supervisor = Supervisor(workdir, {**ENV, "TASKYARD_BACKEND": store.url})
            roles = frozenset({"worker", "maintenance"})
            procs = [supervisor.start(ProcSpec(f"worker{i}", WORKER_ARGS, roles, app="chaos.fanin:app"))
                     for i in range(workers)]
            started = time.time()
            wf = await client.backend.workflow_enqueue(workflow=draft(client, children, seed))
            deadline = started + timeout
            next_kill = started + kill_every
            while time.time() < deadline:
                current = await client.backend.workflow_get(workflow_id=wf.id)
                assert current is not None
                wf = current
                if wf.status is not WorkflowStatus.RUNNING:
                    break
                fan_out_left = any(j.step != "report" and not j.is_finished for j in wf.steps)
                if fan_out_left and time.time() >= next_kill:
                    live = [p for p in procs if p.alive]
                    victim = rng.choice(live)
                    supervisor.signal(victim, signal.SIGKILL)
                    procs[procs.index(victim)] = supervisor.restart(victim)
                    result.kills += 1
                    next_kill = time.time() + kill_every
                await asyncio.sleep(0.2)
            result.seconds = time.time() - started
            await asyncio.to_thread(supervisor.stop_all)
            check(result, wf, history.read_dir(workdir / "history"))
        finally:
            await client.aclose()
    (workdir / "result.json").write_text(json.dumps(asdict(result) | {"ok": result.ok}, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m chaos.fanin`: run the scenario on each backend, print a Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m chaos.fanin", description=__doc__)
    parser.add_argument("--backend", action="append", choices=KINDS, help="repeatable; default: all of them")
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=1.0, help="seconds between SIGKILLs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="chaos-fanin-"))
    rows = []
    for backend in args.backend or list(KINDS):
        result = asyncio.run(run(backend, children=args.children, workers=args.workers, seed=args.seed,
                                 kill_every=args.kill_every, root=root))
        rows.append(result)
        print(f"{backend}: {'ok' if result.ok else 'FAILED'} — {result.kills} kills, {len(result.reruns)} re-runs, "
              f"{result.seconds:.1f} s", flush=True)
        for v in result.violations[:10]:
            print("   ", v, flush=True)
    print("\n| backend | steps | workers | SIGKILLs | status | steps rescued | bodies finished twice | "
          "fan-in runs | fan-in saw | seconds | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.backend} | {r.children} + 1 | {r.workers} | {r.kills} | {r.status} | {r.rescued} | "
              f"{len(r.reruns)} | {r.fan_in_runs} | {r.fan_in_seen} | {r.seconds:.1f} | {'ok' if r.ok else 'FAILED'} |")
    print(f"\nlogs and histories under {root}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
