"""`make bench` (CPU part): 200 jobs of ~50 ms of pure-Python work on one worker with
concurrency 2, as thread handlers and as `isolation="process"` handlers, side by side in one
run (rounds interleaved), medians of several rounds. Writes `bench/results/cpu.json` and
`cpu.md`.

The worker is in-process on the memory backend (what differs is only where handlers run);
its children are started and warmed before the clock starts, as a long-running worker's are.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime

from bench import report
from bench.cpu_app import app, burn
from taskyard.services.worker import JobOutcome, Worker, WorkerConfig

MODES = {"threads": "burn-thread", "processes": "burn-process"}


def calibrate(target: float = 0.05) -> int:
    """Iterations of `burn` that take about `target` seconds of CPU here (best of five; CPU
    time, so that other work on the machine does not shrink the jobs)."""
    rounds = 200_000
    best = min(_timed(rounds) for _ in range(5))
    return max(1, int(rounds * target / best))


def _timed(rounds: int) -> float:
    started = time.process_time()
    burn({"rounds": rounds})
    return time.process_time() - started


async def measure(task: str, jobs: int, rounds: int, concurrency: int) -> float:
    """Seconds from enqueueing `jobs` jobs to the last one's completion, on a warm worker."""
    worker = Worker(app, WorkerConfig(concurrency=concurrency, poll_interval=0.05))
    done: list[JobOutcome] = []
    finished = asyncio.Event()
    expected = concurrency * 2

    def count(outcome: JobOutcome) -> None:
        done.append(outcome)
        if len(done) >= expected:
            finished.set()

    worker.subscribe_jobs(count)
    await worker.start()
    try:
        # Warm-up: every child started and has run a job (a running worker's steady state).
        await app.aenqueue_many([(task, {"rounds": 1000}) for _ in range(expected)])
        await finished.wait()
        done.clear()
        finished.clear()
        expected = jobs
        started = time.perf_counter()
        await app.aenqueue_many([(task, {"rounds": rounds}) for _ in range(jobs)])
        await finished.wait()
        elapsed = time.perf_counter() - started
    finally:
        await worker.stop()
    bad = [o for o in done if o.outcome != "completed"]
    if bad:
        raise RuntimeError(f"{len(bad)} job(s) did not complete: {bad[0]}")
    return elapsed


async def run(jobs: int, runs: int, concurrency: int) -> dict:
    rounds = calibrate()
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for i in range(1, runs + 1):
        for mode, task in MODES.items():
            elapsed = await measure(task, jobs, rounds, concurrency)
            seconds[mode].append(elapsed)
            print(f"run {i}/{runs} {mode}: {elapsed:.2f}s ({jobs / elapsed:.1f} jobs/s)", flush=True)
    await app.aclose()
    medians = {mode: statistics.median(values) for mode, values in seconds.items()}
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "jobs": jobs,
        "runs": runs,
        "concurrency": concurrency,
        "rounds_per_job": rounds,
        "seconds": seconds,
        "median_seconds": medians,
        "median_jobs_per_second": {mode: jobs / s for mode, s in medians.items()},
        "speedup": medians["threads"] / medians["processes"],
        # Each round measures threads then processes back to back: the ratio within a round
        # is less exposed to load from other work that comes and goes between rounds.
        "speedup_per_round": [t / p for t, p in zip(seconds["threads"], seconds["processes"], strict=True)],
        "median_speedup_per_round": statistics.median(
            t / p for t, p in zip(seconds["threads"], seconds["processes"], strict=True)
        ),
        "load_average": os.getloadavg(),
    }


def markdown(doc: dict) -> str:
    """The results as a Markdown table."""
    lines = [
        f"# taskyard CPU-bound jobs — medians of {doc['runs']} run(s)",
        "",
        f"Generated {doc['generated_at']} by `make bench` (`python -m bench.cpu`) on "
        f"{doc['machine']['cpus']} CPUs, Python {doc['machine']['python']}: {doc['jobs']} jobs of "
        f"~50 ms pure-Python work ({doc['rounds_per_job']} rounds), one worker, concurrency "
        f"{doc['concurrency']}.",
        "",
        "| handlers run in | median seconds | jobs/s | every run (s) |",
        "|---|---|---|---|",
    ]
    for mode in MODES:
        runs = ", ".join(f"{s:.2f}" for s in doc["seconds"][mode])
        lines.append(
            f"| {mode} | {doc['median_seconds'][mode]:.2f} | "
            f"{doc['median_jobs_per_second'][mode]:.1f} | {runs} |"
        )
    per_round = ", ".join(f"{r:.2f}" for r in doc["speedup_per_round"])
    lines += [
        "",
        f"Processes over threads: **{doc['speedup']:.2f}x** (ratio of the medians); within each "
        f"round {per_round} (median {doc['median_speedup_per_round']:.2f}x). Load average at the "
        f"end: {', '.join(f'{x:.2f}' for x in doc['load_average'])}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m bench.cpu [--jobs 200] [--runs 3] [--concurrency 2]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--output", default="cpu", help="results/<name>.json and .md")
    args = parser.parse_args(argv)
    doc = asyncio.run(run(args.jobs, args.runs, args.concurrency))
    text = markdown(doc)
    json_path, md_path = report.write(args.output, doc, text)
    print(text)
    print(f"wrote {json_path.name} and {md_path.name} in bench/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
