"""What SQLite's search index costs enqueue: this tree against another source tree (by default
the commit before search, `e3f50c7^1`, unpacked with `git archive`), on fresh files.

    python -m bench.search_enqueue [--base /tmp/base/src] [--tree eager=/tmp/eager/src] \
        [--rounds 3] [--search-jobs 200000]

Enqueue: 2,000 jobs one by one (one transaction each) and 10 bulks of 1,000, on a fresh file
per measurement, each in its own subprocess with `PYTHONPATH` set to the tree measured; rounds
interleaved (the order reversed every other round) so that drifting load from other
processes favours no side; medians of jobs/s and each tree's ratio to the base. `--tree`
adds more trees to the rounds (e.g. the index kept by an insert trigger, `e3f50c7`). Then, in every tree but the base (which has no search),
a bulk load and one search right after it (here it pays the index's catch-up over every job)
and a second one.
Not a test: the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "src"
BASE_COMMIT = "e3f50c7^1"


def _draft(i: int, ms: int) -> object:
    from taskyard.core.ids import new_id
    from taskyard.core.job import JobDraft

    return JobDraft(
        id=new_id(ms), task="bench.run", queue=("default", "mail", "reports")[i % 3],
        payload={"user": f"user{i}@example.com", "order": f"ORD-{i:07d}", "amount": i % 1000},
        unique_key=f"invoice-{i}" if i % 100 == 0 else None,
    )


async def _enqueue(mode: str, db: str) -> float:
    """jobs/s of one measurement in this process (whichever taskyard is importable)."""
    from taskyard.backends import backend_from_url

    backend = backend_from_url(f"sqlite:///{db}")
    await backend.migrate()
    base = int(time.time() * 1000)
    sizes = [1] * 2000 if mode == "single" else [1000] * 10
    batches, n = [], 0
    for size in sizes:
        batches.append([_draft(i, base + i) for i in range(n, n + size)])
        n += size
    try:
        started = time.perf_counter()
        for drafts in batches:
            await backend.job_enqueue_many(drafts=drafts)
        return n / (time.perf_counter() - started)
    finally:
        await backend.close()


async def _search(db: str, jobs: int) -> dict[str, float]:
    """Bulk-load `jobs` jobs, then time a search twice (the first one catches the index up)."""
    from taskyard.backends import backend_from_url
    from taskyard.core.job import JobFilter

    backend = backend_from_url(f"sqlite:///{db}")
    await backend.migrate()
    base = int(time.time() * 1000)
    try:
        started = time.perf_counter()
        for start in range(0, jobs, 5000):
            drafts = [_draft(i, base + i) for i in range(start, min(jobs, start + 5000))]
            await backend.job_enqueue_many(drafts=drafts)
        loaded = time.perf_counter()
        wanted = JobFilter(q=f"user{jobs // 2 + 7}@example")  # one job, far from the newest
        times = []
        for _ in range(2):
            t = time.perf_counter()
            page = await backend.jobs_list(filter=wanted, limit=50)
            times.append(time.perf_counter() - t)
            assert len(page.jobs) == 1, page
        return {"load_s": loaded - started, "first_search_s": times[0], "second_search_s": times[1]}
    finally:
        await backend.close()


def _child(tree: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-m", "bench.search_enqueue", "--child", *args],
        env=env, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _measure(tree: Path, mode: str, tmp: Path) -> float:
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        return float(_child(tree, mode, str(Path(d) / "bench.db")))


def _base_tree(tmp: Path) -> Path:
    root = Path(__file__).resolve().parent.parent
    target = tmp / "base"
    target.mkdir()
    archive = subprocess.run(["git", "archive", BASE_COMMIT, "src"], cwd=root, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help=f"the other tree's src/ (default: {BASE_COMMIT})")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=SRC",
                        help="another tree to measure beside base and this one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--search-jobs", type=int, default=200_000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, db, *rest = args.child
        if mode == "search":
            print(json.dumps(asyncio.run(_search(db, int(rest[0])))))
        else:
            print(asyncio.run(_enqueue(mode, db)))
        return 0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = args.base or _base_tree(tmp)
        trees = [("base", base), ("this", HERE)]
        trees += [(n, Path(p)) for n, _, p in (t.partition("=") for t in args.tree)]
        rates: dict[tuple[str, str], list[float]] = {}
        for r in range(args.rounds):
            order = list(trees)
            if r % 2:
                order.reverse()
            for mode in ("single", "bulk"):
                for name, tree in order:
                    rate = _measure(tree, mode, tmp)
                    rates.setdefault((name, mode), []).append(rate)
                    print(f"round {r + 1} {mode:6} {name:6} {rate:9.0f} jobs/s", flush=True)
        print()
        for mode, what in (("single", "2,000 one by one"), ("bulk", "10 x 1,000")):
            b = statistics.median(rates[("base", mode)])
            line = f"{what:17} base {b:7.0f} jobs/s"
            for name, _ in trees[1:]:
                t = statistics.median(rates[(name, mode)])
                # Also the median of each round's own ratio: the two sides of one round ran
                # minutes apart at most, under much the same load.
                paired = statistics.median(
                    x / y for x, y in zip(rates[(name, mode)], rates[("base", mode)], strict=True)
                )
                line += f"  {name} {t:7.0f} jobs/s ({t / b:.2f}x; per round {paired:.2f}x)"
            print(line)
        for name, tree in trees[1:] if args.search_jobs else []:
            with tempfile.TemporaryDirectory(dir=tmp) as sd:
                got = json.loads(_child(tree, "search", str(Path(sd) / "s.db"), str(args.search_jobs)))
            print(
                f"{name}: {args.search_jobs} jobs bulk-loaded in {got['load_s']:.1f} s; first "
                f"search {got['first_search_s'] * 1000:.0f} ms, second "
                f"{got['second_search_s'] * 1000:.1f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
