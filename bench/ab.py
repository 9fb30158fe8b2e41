"""A/B drain: this tree's taskyard against another source tree (e.g. the commit before a
change), on the same machine in one run, rounds interleaved (ABBA) so that drifting load
from other processes does not favour one side; prints medians and the B/A ratio.

    git archive <base> src | tar -x -C /tmp/base
    python -m bench.ab --base /tmp/base/src --backends redis,postgres --runs 3

Each drain: N no-op jobs enqueued in a fresh namespace (Redis key prefix, PostgreSQL schema,
ANALYZEd after loading so the plan does not depend on when autovacuum first looks at the
new table), then one in-process burst worker (`taskyard.testing.drain`) runs them; the
figure is jobs/s of the drain alone. Each drain is its own subprocess with `PYTHONPATH` set
to the tree measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent.parent / "src"
# As bench.system reads them; not imported from there, since a child runs another tree's
# taskyard, which bench.system's imports may not match.
POSTGRES_URL = os.environ.get("TASKYARD_BENCH_POSTGRES",
                              os.environ.get("TASKYARD_TEST_POSTGRES",
                                             "postgresql://postgres@127.0.0.1:5432/test"))
REDIS_URL = os.environ.get("TASKYARD_BENCH_REDIS",
                           os.environ.get("TASKYARD_TEST_REDIS", "redis://127.0.0.1:6379/0"))


def with_param(url: str, **params: str) -> str:
    """`url` with query parameters added or replaced."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _drain_once(kind: str, jobs: int, concurrency: int) -> float:
    """One drain in this process (whichever taskyard is importable); returns jobs/s."""
    from taskyard import Taskyard
    from taskyard.testing import drain

    tag = "ab" + uuid.uuid4().hex[:10]
    url = (with_param(REDIS_URL, prefix=f"{tag}:") if kind == "redis"
           else with_param(POSTGRES_URL, schema=tag))
    app = Taskyard(url)

    async def noop(payload: dict) -> None:
        return None

    for name in ("bench.noop", "bench.a", "bench.b", "bench.c", "bench.d", "bench.e"):
        app.task(name, queue="bench")(noop)
    await app.open()
    try:
        for start in range(0, jobs, 1000):
            await app.aenqueue_many([("bench.noop", {"i": i}) for i in range(start, min(jobs, start + 1000))])
        if kind == "postgres":
            import psycopg

            async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
                await conn.execute(f"ANALYZE {tag}.jobs")
        started = time.perf_counter()
        await drain(app, concurrency=concurrency)
        return jobs / (time.perf_counter() - started)
    finally:
        if kind == "redis":
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(REDIS_URL)
            keys = [k async for k in client.scan_iter(match=f"{tag}:*", count=1000)]
            for i in range(0, len(keys), 500):
                await client.delete(*keys[i : i + 500])
            await client.aclose()
        else:
            import psycopg

            async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
                await conn.execute(f"DROP SCHEMA {tag} CASCADE")
        await app.aclose()


def _measure(src: Path, kind: str, jobs: int, concurrency: int) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(HERE.parent)])}
    out = subprocess.run(
        [sys.executable, "-m", "bench.ab", "--child", kind, str(jobs), str(concurrency)],
        env=env, cwd=HERE.parent, check=True, capture_output=True, text=True, timeout=600,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, help="the `src` directory of the tree to compare with")
    parser.add_argument("--backends", default="redis,postgres")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per drain (PostgreSQL: half)")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "JOBS", "CONCURRENCY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, jobs, concurrency = args.child
        print(f"{asyncio.run(_drain_once(kind, int(jobs), int(concurrency))):.1f}")
        return 0
    if args.base is None:
        parser.error("--base is required")
    trees = {"A (base)": args.base.resolve(), "B (this tree)": HERE}
    for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
        jobs = args.jobs if kind == "redis" else args.jobs // 2
        results: dict[str, list[float]] = {name: [] for name in trees}
        for run in range(args.runs):
            order = list(trees) if run % 2 == 0 else list(reversed(trees))
            for name in order:
                value = _measure(trees[name], kind, jobs, args.concurrency)
                results[name].append(value)
                print(f"{kind} run {run + 1} {name}: {value:,.0f} jobs/s", flush=True)
        a, b = (statistics.median(v) for v in results.values())
        print(f"{kind}: median A {a:,.0f}, B {b:,.0f} jobs/s; B/A = {b / a:.2f} "
              f"(A {', '.join(f'{v:,.0f}' for v in results['A (base)'])}; "
              f"B {', '.join(f'{v:,.0f}' for v in results['B (this tree)'])})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
