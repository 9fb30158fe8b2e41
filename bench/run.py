"""`make bench`: taskyard's three workloads on every reachable backend, medians of several runs.

Writes `bench/results/latest.json` and `latest.md` and prints the table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench import report
from bench.peers import harness
from bench.system import TaskyardSystem, reachable

KINDS = ("memory", "sqlite", "postgres", "redis", "redis-cluster", "redis-cluster-durable", "mysql")
#: What `make bench` measures (durable enqueue on demand: --backends, or bench.durable).
DEFAULT_KINDS = tuple(k for k in KINDS if k != "redis-cluster-durable")


def run_rounds(kinds: list[str], sizes: harness.RoundSizes, runs: int, console: Console,
               log: Path) -> list[report.Entry]:
    """Measure every available kind `runs` times, interleaved so noise spreads evenly."""
    entries = {kind: report.Entry(name=f"taskyard ({kind})") for kind in kinds}
    for kind in kinds:
        if (why := reachable(kind)) is not None:
            entries[kind].skipped = why
            console.print(f"[yellow]skipping {kind}: {why}[/]")
    live = [k for k in kinds if not entries[k].skipped]
    for run in range(1, runs + 1):
        for kind in live:
            started = time.monotonic()
            system = TaskyardSystem(kind)
            entries[kind].configs = system.configs
            result = harness.run_round(system, sizes, log=log)
            entries[kind].rounds.append(result)
            console.print(f"run {run}/{runs} {kind}: {time.monotonic() - started:.1f}s"
                          + (f" [red]{result['errors']}[/]" if result.get("errors") else ""))
    return list(entries.values())


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m bench.run [--runs N] [--backends memory,sqlite] [--quick]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="rounds per backend (median)")
    parser.add_argument("--backends", default=",".join(DEFAULT_KINDS),
                        help=f"comma-separated kinds of {', '.join(KINDS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run (smoke test)")
    parser.add_argument("--output", default="latest", help="results/<name>.json and .md")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.backends.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; choose from {', '.join(KINDS)}")
    sizes = harness.RoundSizes()
    runs = args.runs
    if args.quick:
        sizes = harness.RoundSizes(single=200, drain=1000, latency=50)
        runs = 1
    console = Console()
    console.width = max(console.width, 130)  # the table is wide; never squeeze it into 80
    log = Path(tempfile.gettempdir()) / "taskyard-bench-workers.log"
    console.print(f"taskyard benchmark: {runs} run(s) of {sizes.single} single enqueues, "
                  f"{sizes.drain}-job drains and {sizes.latency} paced jobs; worker log: {log}")
    entries = run_rounds(kinds, sizes, runs, console, log)
    doc = report.document(entries, runs=runs, sizes=vars(sizes))
    title = f"taskyard — medians of {runs} run(s)"
    markdown = "\n\n".join([
        f"# {title}",
        f"Generated {doc['generated_at']} by `make bench` on {doc['machine']['cpus']} CPUs, "
        f"Python {doc['machine']['python']}. See docs/benchmarks.md for what each column means.",
        report.markdown_table(entries),
        report.notes_markdown(entries),
    ])
    json_path, md_path = report.write(args.output, doc, markdown)
    console.print(report.rich_table(entries, title))
    console.print(report.notes_markdown(entries), markup=False)
    console.print(f"wrote {json_path.name} and {md_path.name} in bench/results/")
    failed = any(e.errors() for e in entries)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
