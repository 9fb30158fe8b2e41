"""`make bench` (search): store 1,000,000 jobs on SQLite and PostgreSQL through the backend and
time `jobs_list` searches (`JobFilter.q`), medians of several runs; the goal is under 200 ms.

1% of the jobs fail with an error text (through claim and settle, so the search index sees the
write path the workers use) and 1% carry a unique key. Writes `bench/results/search.json`.
Not a test: the figures depend on the machine and its load, which the report states.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.system import POSTGRES_URL, reachable, with_param
from taskyard.backends import backend_from_url
from taskyard.backends.protocol import Backend
from taskyard.core.ids import new_id
from taskyard.core.job import AttemptError, JobDraft, JobFilter, JobStatus
from taskyard.core.settle import Settle

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 5000
QUEUES = ("default", "mail", "reports")


@dataclass(frozen=True)
class Probe:
    """One search to time."""

    name: str
    filter: JobFilter
    note: str


def _draft(i: int, ms: int) -> JobDraft:
    flaky = i % 100 == 50
    return JobDraft(
        id=new_id(ms),
        task="net.call" if flaky else f"{QUEUES[i % 3]}.run",
        queue="flaky" if flaky else QUEUES[i % 3],
        payload={"user": f"user{i}@example.com", "order": f"ORD-{i:07d}", "amount": i % 1000},
        unique_key=f"invoice-{i}" if i % 100 == 0 else None,
    )


async def load(backend: Backend, n: int) -> dict[str, float]:
    """Store `n` jobs, then fail the flaky ones; returns the seconds each step took."""
    started = time.monotonic()
    base = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    for start in range(0, n, BATCH):
        drafts = [_draft(i, base + i) for i in range(start, min(n, start + BATCH))]
        await backend.job_enqueue_many(drafts=drafts)
    loaded = time.monotonic()
    while claimed := await backend.job_claim(queues=["flaky"], limit=1000, worker_id="bench", lease=600):
        now = datetime.now(UTC)
        outcomes = []
        for job in claimed:
            i = int(job.payload["order"].removeprefix("ORD-"))
            error = AttemptError.of_text(
                attempt=1, type="ConnectionResetError", message=f"peer 10.0.{i % 997}.9 reset the connection",
                traceback=None, at=now,
            )
            assert job.lease_token is not None
            outcomes.append(Settle.failed(job.id, job.lease_token, error, None))
        await backend.jobs_settle(outcomes=outcomes)
    return {"enqueue_s": round(loaded - started, 1), "fail_s": round(time.monotonic() - loaded, 1)}


def probes(n: int, some_id: str) -> list[Probe]:
    """The searches timed, from a single hit to every job."""
    mid = n // 2 + 7
    return [
        Probe("payload, one hit", JobFilter(q=f"user{mid}@example"), "1 match"),
        Probe("job id", JobFilter(q=some_id), "1 match"),
        Probe("unique key", JobFilter(q=f"invoice-{(n // 3) // 100 * 100}"), "1 match (and its prefixes)"),
        Probe("error text", JobFilter(q="10.0.513.9"), f"~{n // 100 // 997} matches, failed jobs"),
        Probe("prefix + queue + status", JobFilter(q="ORD-00012", queue="mail", status=JobStatus.PENDING),
              "~33 matches"),
        Probe("every job matches", JobFilter(q="example.com"), f"{n} matches, first page"),
        Probe("common + status", JobFilter(q="example.com", status=JobStatus.FAILED), f"{n // 100} matches"),
        Probe("no match", JobFilter(q="zzzz-nothing"), "0 matches"),
        Probe("2 characters (scan)", JobFilter(q="q@"), "0 matches: trigrams need 3 characters, a full scan"),
    ]


async def time_probe(backend: Backend, probe: Probe, runs: int) -> dict[str, Any]:
    """Median and spread of `runs` first pages of 50."""
    times: list[float] = []
    found = 0
    for _ in range(runs):
        started = time.perf_counter()
        page = await backend.jobs_list(filter=probe.filter, limit=50)
        times.append((time.perf_counter() - started) * 1000)
        found = len(page.jobs)
    return {
        "search": probe.name, "note": probe.note, "page": found,
        "median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
    }


async def bench_kind(kind: str, n: int, runs: int, tmp: Path) -> dict[str, Any]:
    """Load and time one backend kind."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'search.db'}"
    else:
        url = with_param(POSTGRES_URL, schema=f"bench_search_{os.getpid()}")
    backend = backend_from_url(url)
    await backend.migrate()
    try:
        timings = await load(backend, n)
        some_id = (await backend.jobs_list(filter=JobFilter(), limit=1)).jobs[0].id
        if kind == "postgres":
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f"ANALYZE bench_search_{os.getpid()}.jobs")
        rows = [await time_probe(backend, p, runs) for p in probes(n, some_id)]
        size = _size(kind, tmp, url)
    finally:
        await backend.close()
        if kind == "postgres":
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS bench_search_{os.getpid()} CASCADE")
    return {"kind": kind, "jobs": n, **timings, **size, "searches": rows}


def _size(kind: str, tmp: Path, url: str) -> dict[str, Any]:
    if kind == "sqlite":
        total = sum(p.stat().st_size for p in tmp.glob("search.db*"))
        return {"store_mb": round(total / 1e6)}
    import psycopg

    schema = f"bench_search_{os.getpid()}"
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size(%s), pg_relation_size(to_regclass(%s))",
            (f"{schema}.jobs", f"{schema}.jobs_search"),
        ).fetchone()
    assert row is not None
    return {"store_mb": round(row[0] / 1e6), "search_index_mb": round((row[1] or 0) / 1e6)}


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m bench.search [--jobs N] [--runs N] [--backends sqlite,postgres]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7, help="runs per search (median)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--output", default="search", help="results/<name>.json")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
        if kind not in ("sqlite", "postgres"):
            parser.error(f"unknown backend {kind!r}; choose sqlite or postgres")
        if (why := reachable(kind)) is not None:
            print(f"skipping {kind}: {why}")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(bench_kind(kind, args.jobs, args.runs, Path(tmp)))
        results.append(result)
        print(f"\n{kind}: {args.jobs} jobs, enqueue {result['enqueue_s']} s, fail {result['fail_s']} s, "
              f"store {result['store_mb']} MB")
        for row in result["searches"]:
            print(f"  {row['search']:<26} {row['median_ms']:>8.1f} ms median "
                  f"({row['min_ms']}-{row['max_ms']})  page {row['page']:>2}  {row['note']}")
    load = os.getloadavg()
    report = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "loadavg": [round(x, 1) for x in load], "results": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nload average {load[0]:.1f} on {os.cpu_count()} CPUs (a shared machine: figures vary)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
