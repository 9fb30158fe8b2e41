"""A/B of the two Redis columns that `bench.ab` does not cover: enqueue one by one and idle
latency (enqueue -> handler start, one paced job at a time, one idle `taskyard worker`).

    git archive <base> src | tar -x -C /tmp/base
    python -m bench.idle --base /tmp/base/src --runs 5

Each round is its own subprocess with `PYTHONPATH` set to the tree measured (and its worker
process inherits it), rounds interleaved ABBA; prints medians per side and the B/A ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.peers import harness

REPO = Path(__file__).resolve().parent.parent
REDIS = "redis://127.0.0.1:6379/0"


async def _round(single: int, latency: int) -> dict[str, float | None]:
    from bench.app import QUEUE, build_app

    url = f"{REDIS}?prefix=bench-idle-{os.getpid()}-{int(time.time())}"
    app = build_app(url)
    await app.open()
    await app.backend.migrate()
    try:
        for _ in range(50):  # warm-up: connections, scripts
            await app.aenqueue("bench.noop", {})
        start = time.perf_counter()
        for _ in range(single):
            await app.aenqueue("bench.noop", {})
        out: dict[str, float | None] = {"enqueue_single": single / (time.perf_counter() - start)}
        cmd = [sys.executable, "-m", "taskyard", "--app", "bench.app:app", "--backend", url,
               "worker", "--queues", QUEUE, "--concurrency", "10"]
        with harness.probe_dir() as d, harness.workers([cmd], probe=d, cwd=REPO) as procs:
            harness.wait_for(d, single + 50, timeout=120, procs=procs)
            for _ in harness.paced(latency, 0.010):
                await app.aenqueue("bench.noop", {"sent_at": time.time()})
            tally = harness.wait_for(d, single + 50 + latency, timeout=60, procs=procs)
        lat = harness.latency_summary(tally.latencies)
        out.update({f"latency_{k}": v for k, v in lat.items()})
        return out
    finally:
        await app.aclose()
        harness.redis_delete(REDIS, f"bench-idle-{os.getpid()}-*")


def _one(src: str, single: int, latency: int) -> dict[str, float | None]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, str(REPO)])}
    cmd = [sys.executable, "-m", "bench.idle", "--round", "--single", str(single),
           "--latency", str(latency)]
    done = subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="the `src` directory of the tree to compare with")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--latency", type=int, default=300)
    parser.add_argument("--round", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.round:
        print(json.dumps(asyncio.run(_round(args.single, args.latency))))
        return
    sides = {"B (this tree)": str(REPO / "src")}
    if args.base:
        sides = {"A (base)": args.base, **sides}
    results: dict[str, list[dict[str, float | None]]] = {k: [] for k in sides}
    names = list(sides)
    for run in range(args.runs):
        for name in names if run % 2 == 0 else names[::-1]:
            results[name].append(_one(sides[name], args.single, args.latency))
    keys = ["enqueue_single", "latency_p50", "latency_p99"]
    medians = {n: {k: harness.median([r[k] for r in rs]) for k in keys} for n, rs in results.items()}
    for name, figures in medians.items():
        print(name, {k: round(v, 3) if v is not None else None for k, v in figures.items()})
    if len(names) == 2:
        a, b = (medians[n] for n in names)
        print("B/A", {k: round(b[k] / a[k], 3) if a[k] and b[k] else None for k in keys})


if __name__ == "__main__":
    main()
