"""`make bench-scale`: cost as the work grows — a large backlog on each backend.

Per backend (sqlite, postgres, redis; each in a fresh file, schema or key prefix, removed
after): a 10,000-job drain as the baseline, then `--jobs` jobs (default 1,000,000)
bulk-enqueued in batches of 1,000, and right after the load, with no maintenance in between:

- enqueue rate, and the store's size per job;
- the drain rate of 2 `taskyard worker` processes (concurrency 50 each) over the first
  `--drain` jobs of the backlog, against the baseline (the goal: >= 80 %);
- claim latency (one `job_claim` of 1 and of 50 jobs, through the backend);
- `queue_counts`, `task_counts` and `jobs_list` pages (by status, by queue, by both, newest
  first), the goal being <= 50 ms. All latencies are medians of `--repeat` calls.

`--churn N` also measures the table under churn (PostgreSQL and SQLite): N jobs run through
enqueue, claim, settle and prune in batches, then the store's size before and after VACUUM,
and after N more jobs. Writes `bench/results/scale.json` and `scale.md`.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.app import QUEUE
from bench.peers import harness
from bench.system import POSTGRES_URL, TaskyardSystem, reachable
from taskyard.backends.protocol import Backend
from taskyard.core.ids import new_id
from taskyard.core.job import JobDraft, JobFilter, JobStatus
from taskyard.core.settle import Settle

KINDS = ("sqlite", "postgres", "redis")
GOAL_MS = 50.0
#: The listings timed: (name, filter).
LISTINGS: tuple[tuple[str, JobFilter], ...] = (
    ("list pending", JobFilter(status=JobStatus.PENDING)),
    ("list running", JobFilter(status=JobStatus.RUNNING)),
    ("list completed", JobFilter(status=JobStatus.COMPLETED)),
    ("list failed", JobFilter(status=JobStatus.FAILED)),
    ("list queue", JobFilter(queue=QUEUE)),
    ("list queue+pending", JobFilter(queue=QUEUE, status=JobStatus.PENDING)),
    ("list queue+completed", JobFilter(queue=QUEUE, status=JobStatus.COMPLETED)),
    ("list all", JobFilter()),
)


#: A latency whose calls take longer than this in all stops being repeated (slow reads of
#: every job at 1M, e.g. Redis's task_counts, would otherwise take many minutes).
REPEAT_BUDGET_S = 10.0


async def _median_ms(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """Median wall time of `call()` in ms (one untimed call first: connections, caches),
    over `repeat` calls or as many as fit in REPEAT_BUDGET_S (at least one)."""
    started = time.perf_counter()
    await call()
    if time.perf_counter() - started > REPEAT_BUDGET_S:
        return round((time.perf_counter() - started) * 1000, 2)  # too slow to repeat
    times: list[float] = []
    budget = time.perf_counter() + REPEAT_BUDGET_S
    while len(times) < repeat and (not times or time.perf_counter() < budget):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def drain(system: TaskyardSystem, count: int, timeout: float, log: Path) -> dict[str, Any]:
    """Run 2 worker processes until `count` jobs ran (or `timeout`); their rate from the first
    handler start to the last, and how many ran."""
    with harness.probe_dir() as d:
        with system.start_workers("best", drain=True, probe=d, cwd=None, env=None, log=log) as procs:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                tally = harness.read_tally(d)
                if tally.count >= count or all(p.poll() is not None for p in procs):
                    break
                time.sleep(0.05)
        time.sleep(2 * harness.FLUSH_SECONDS)
        tally = harness.read_tally(d)
    return {"rate": tally.rate(), "ran": tally.count, "complete": tally.count >= count}


async def probe_claims(backend: Backend, repeat: int, label: str = "") -> dict[str, float]:
    """Median latencies (ms) of claims of 1 and 50 jobs (the jobs stay claimed)."""
    out: dict[str, float] = {}
    for limit in (1, 50):
        out[f"claim {limit}{label}"] = await _median_ms(
            lambda limit=limit: backend.job_claim(queues=[QUEUE], limit=limit,  # type: ignore[misc]
                                                  worker_id="bench-scale", lease=3600), repeat)
    return out


async def probe_queries(backend: Backend, repeat: int) -> dict[str, float]:
    """Median latencies (ms) of claims, counts and listings on `backend` as it is."""
    out = await probe_claims(backend, repeat)
    out["queue_counts"] = await _median_ms(backend.queue_counts, repeat)
    out["task_counts"] = await _median_ms(backend.task_counts, repeat)
    for name, f in LISTINGS:
        out[name] = await _median_ms(lambda f=f: backend.jobs_list(filter=f, limit=50), repeat)  # type: ignore[misc]
    return out


def measure(kind: str, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """Everything measured on one backend."""
    out: dict[str, Any] = {"jobs": args.jobs}
    system = TaskyardSystem(kind)
    try:
        if args.baseline:
            system.reset()
            system.enqueue_bulk(args.baseline)
            base = drain(system, args.baseline, args.drain_timeout, log)
            out["baseline_drain"] = base["rate"]
        system.reset()
        before = system.store_bytes()
        started = time.perf_counter()
        system.enqueue_bulk(args.jobs)
        out["enqueue_rate"] = args.jobs / (time.perf_counter() - started)
        after = system.store_bytes()
        if before is not None and after is not None:
            out["store_bytes_per_job"] = (after - before) / args.jobs
        app = system.app
        assert app is not None
        # Before any worker: the claim the planner sees right after the load.
        after_load = system._call(probe_claims(app.backend, args.repeat, " after load"))
        big = drain(system, args.drain, args.drain_timeout, log)
        out["drain_rate"], out["drain_ran"] = big["rate"], big["ran"]
        if not big["complete"]:
            out["drain_note"] = f"only {big['ran']} of {args.drain} jobs ran in {args.drain_timeout:.0f} s"
        if out.get("baseline_drain") and big["rate"]:
            out["drain_vs_baseline"] = big["rate"] / out["baseline_drain"]
        out["latency_ms"] = {**after_load, **system._call(probe_queries(app.backend, args.repeat))}
    finally:
        system.close()
    return out


async def _churn_rounds(backend: Backend, n: int, batch: int) -> None:
    """Run `n` jobs through enqueue, claim, settle (completed) and prune, `batch` at a time."""
    for _ in range(0, n, batch):
        await backend.job_enqueue_many(drafts=[JobDraft(id=new_id(), task="bench.noop", queue=QUEUE,
                                                        payload={}) for _ in range(batch)])
        claimed = await backend.job_claim(queues=[QUEUE], limit=batch, worker_id="churn", lease=600)
        await backend.jobs_settle(outcomes=[Settle.completed(j.id, j.lease_token or "") for j in claimed])
        await backend.jobs_prune(status=JobStatus.COMPLETED, keep_last=1000)


def churn(kind: str, n: int, batch: int = 500) -> dict[str, Any]:
    """Store size of a queue that has run `n` jobs (1,000 kept), before and after VACUUM."""
    import psycopg

    system = TaskyardSystem(kind)
    out: dict[str, Any] = {"jobs": n}
    try:
        system.reset()
        app = system.app
        assert app is not None

        def size() -> int | None:
            if kind == "postgres":
                with psycopg.connect(POSTGRES_URL) as conn:
                    row = conn.execute("SELECT pg_total_relation_size(%s)",
                                       (f"{system.url.rsplit('schema=', 1)[1]}.jobs",)).fetchone()
                return int(row[0]) if row else None
            import sqlite3

            # The database file's pages (the WAL is checkpointed into it first).
            with contextlib.closing(sqlite3.connect(system.url.removeprefix("sqlite:///"))) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                pages = conn.execute("PRAGMA page_count").fetchone()[0]
                return int(pages * conn.execute("PRAGMA page_size").fetchone()[0])

        def vacuum() -> None:
            if kind == "postgres":
                with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                    conn.execute(f"VACUUM {system.url.rsplit('schema=', 1)[1]}.jobs")  # type: ignore[arg-type]
            else:
                import sqlite3

                path = system.url.removeprefix("sqlite:///")
                with contextlib.closing(sqlite3.connect(path)) as conn:
                    conn.execute("VACUUM")
                    conn.execute("INSERT INTO jobs_search (jobs_search) VALUES ('rebuild')")
                    conn.commit()

        out["empty_bytes"] = size()
        started = time.perf_counter()
        system._call(_churn_rounds(app.backend, n, batch))
        out["churn_rate"] = n / (time.perf_counter() - started)
        out["after_n_bytes"] = size()
        vacuum()
        out["after_vacuum_bytes"] = size()
        system._call(_churn_rounds(app.backend, n, batch))
        out["after_2n_bytes"] = size()
        vacuum()
        out["after_2n_vacuum_bytes"] = size()
    finally:
        system.close()
    return out


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def markdown(doc: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    kinds = [k for k, r in doc["backends"].items() if "skipped" not in r]
    lines = [f"# taskyard at scale — {doc['jobs']:,} queued jobs" if kinds else "# taskyard under churn",
             f"Generated {doc['generated_at']} by `{doc['command']}` on {doc['machine']['cpus']} CPUs. "
             f"Medians of {doc['repeat']} calls; the goal for counts and listings is <= {GOAL_MS:.0f} ms.",
             "", "| figure | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]

    def row(name: str, cell: Callable[[dict[str, Any]], str]) -> None:
        if not kinds:
            return
        lines.append(f"| {name} | " + " | ".join(cell(doc["backends"][k]) for k in kinds) + " |")

    def num(key: str, fmt: str = "{:,.0f}") -> Callable[[dict[str, Any]], str]:
        return lambda r: "-" if r.get(key) is None else fmt.format(r[key])

    if not kinds:
        del lines[2:]
    row("bulk enqueue (jobs/s)", num("enqueue_rate"))
    row("store per job (bytes)", num("store_bytes_per_job"))
    row("drain, 10k backlog (jobs/s)", num("baseline_drain"))
    row("drain right after the bulk load (jobs/s)", num("drain_rate"))
    row("drain vs 10k backlog", num("drain_vs_baseline", "{:.0%}"))
    names = next((list(doc["backends"][k]["latency_ms"]) for k in kinds), [])
    for name in names:
        row(f"{name} (ms)", lambda r, name=name: f"{r['latency_ms'][name]:.1f}")
    notes = [f"- {k}: {r['skipped']}" for k, r in doc["backends"].items() if "skipped" in r]
    notes += [f"- {k}: {r['drain_note']}" for k, r in doc["backends"].items() if r.get("drain_note")]
    if notes:
        lines += ["", *notes]
    if doc.get("churn"):
        lines += ["", "## Under churn (enqueue, claim, complete, prune; 1,000 kept)", "",
                  "| backend | jobs run | empty (MiB) | after N (MiB) | after VACUUM | after 2N | after 2N + VACUUM | churn (jobs/s) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for kind, r in doc["churn"].items():
            lines.append(f"| {kind} | {r['jobs']:,} | {_mib(r['empty_bytes'])} | {_mib(r['after_n_bytes'])} | "
                         f"{_mib(r['after_vacuum_bytes'])} | {_mib(r['after_2n_bytes'])} | "
                         f"{_mib(r['after_2n_vacuum_bytes'])} | {r['churn_rate']:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m bench.scale [--jobs N] [--backends sqlite,postgres] [--churn N]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs bulk-enqueued per backend")
    parser.add_argument("--drain", type=int, default=20_000, help="jobs drained right after the load")
    parser.add_argument("--baseline", type=int, default=10_000,
                        help="size of the baseline drain (0: none)")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--repeat", type=int, default=7, help="calls per latency (median)")
    parser.add_argument("--churn", type=int, default=0, help="jobs run through for the churn sizes (0: none)")
    parser.add_argument("--no-auto-analyze", action="store_true",
                        help="PostgreSQL: no ANALYZE after the bulk load (claims planned without statistics)")
    parser.add_argument("--churn-only", action="store_true", help="only the churn sizes")
    parser.add_argument("--backends", default=",".join(KINDS))
    parser.add_argument("--output", default="scale", help="results/<name>.json and .md")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.backends.split(",") if k.strip()]
    if unknown := sorted(set(kinds) - set(KINDS)):
        parser.error(f"unknown backend(s) {unknown}; choose from {', '.join(KINDS)}")
    if args.no_auto_analyze:
        from taskyard.backends.postgres import backend as pg_backend

        pg_backend.ANALYZE_CHECK_EVERY = sys.maxsize  # the bulk load is enqueued in this process
    log = Path(tempfile.gettempdir()) / "taskyard-bench-scale-workers.log"
    doc = report.document([], runs=1, sizes={"jobs": args.jobs, "drain": args.drain,
                                              "baseline": args.baseline})
    doc.update(jobs=args.jobs, repeat=args.repeat, backends={}, churn={},
               command="python -m bench.scale " + " ".join(argv if argv is not None else sys.argv[1:]))
    for kind in kinds if not args.churn_only else ():
        if (why := reachable(kind)) is not None:
            doc["backends"][kind] = {"skipped": why}
            continue
        started = time.monotonic()
        doc["backends"][kind] = measure(kind, args, log)
        print(f"{kind}: {time.monotonic() - started:.0f} s {doc['backends'][kind]}", flush=True)
        report.write(args.output, doc, markdown(doc))  # what is measured so far survives a stop
    if args.churn:
        for kind in (k for k in kinds if k in ("postgres", "sqlite")
                     and "skipped" not in doc["backends"].get(k, {})):
            started = time.monotonic()
            doc["churn"][kind] = churn(kind, args.churn)
            print(f"churn {kind}: {time.monotonic() - started:.0f} s {doc['churn'][kind]}", flush=True)
    text = markdown(doc)
    json_path, md_path = report.write(args.output, doc, text)
    print(text)
    print(f"wrote {json_path.name} and {md_path.name} in bench/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
