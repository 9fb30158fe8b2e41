"""`make bench-peers`: the same workloads on Celery, RQ, Dramatiq, arq, Procrastinate, huey,
taskiq, saq, streaq and taskyard, in one run on the same servers, with taskyard's ratio to the
best peer.

Each peer round runs in a subprocess with the peers' own venv (`bench/peers/.venv`, or the
one `VENVS` names for a peer whose pins conflict); rounds are interleaved (every system once,
then again) so machine noise spreads evenly.
Writes `bench/results/peers.json` and `peers.md`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench import report
from bench.peers import harness
from bench.system import TaskyardSystem, reachable

HERE = Path(__file__).resolve().parent
#: peer -> the server it needs.
PEERS = {"celery": "redis", "rq": "redis", "dramatiq": "redis", "arq": "redis",
         "procrastinate": "postgres", "huey": "redis", "taskiq": "redis", "saq": "redis",
         "streaq": "redis"}
#: peer -> its venv directory under bench/peers, when not `.venv` (its pins conflict there).
VENVS = {"saq": ".venv-saq"}


def peer_python(name: str) -> Path:
    """The interpreter of peer `name`'s venv."""
    return HERE / VENVS.get(name, ".venv") / "bin" / "python"
TASKYARD_KINDS = ("redis", "postgres", "sqlite", "memory")


def run_peer(name: str, sizes: harness.RoundSizes, log: Path) -> dict[str, object]:
    """One round of peer `name` in the peers' venv; its JSON line, or the failure."""
    cmd = [str(peer_python(name)), str(HERE / f"peer_{name}.py"), "--single", str(sizes.single),
           "--drain", str(sizes.drain), "--latency", str(sizes.latency), "--log", str(log)]
    try:
        proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return {"errors": ["round timed out after 900 s"]}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"errors": [f"exit {proc.returncode}: " + " | ".join(tail)]}
    result: dict[str, object] = json.loads(lines[-1])
    return result


def ratio_rows(entries: dict[str, report.Entry]) -> tuple[list[list[str]], dict[str, dict[str, float | None]]]:
    """Rows 'taskyard (kind) ÷ best peer' (and ÷ procrastinate for postgres).

    Throughput ratios are taskyard / peer; latency ratios are peer / taskyard, so above 1
    always means taskyard is better.
    """
    peers = [e for name, e in entries.items() if name in PEERS and not e.skipped]
    rows: list[list[str]] = []
    ratios: dict[str, dict[str, float | None]] = {}
    targets: list[tuple[str, str, list[report.Entry]]] = [
        (f"taskyard ({k})", "best peer", peers) for k in ("redis", "postgres")]
    procrastinate = entries.get("procrastinate")
    if procrastinate is not None and not procrastinate.skipped:
        targets.append(("taskyard (postgres)", "procrastinate", [procrastinate]))
    for mine, label, against in targets:
        entry = entries.get(mine)
        if entry is None or entry.skipped or not against:
            continue
        summary = entry.summary()
        cells = [f"{mine} ÷ {label}"]
        figures: dict[str, float | None] = {}
        for key, _, _unit in report.METRICS:
            theirs = [e.summary()[key] for e in against]
            real = [v for v in theirs if v]
            ours = summary[key]
            if not real or not ours:
                figures[key] = None
                cells.append("-")
                continue
            lower = key in report.LOWER_IS_BETTER
            best = min(real) if lower else max(real)
            figures[key] = best / ours if lower else ours / best
            cells.append(f"{figures[key]:.1f}x")
        rows.append(cells)
        ratios[f"{mine} / {label}"] = figures
    return rows, ratios


def best_peer_names(entries: dict[str, report.Entry]) -> dict[str, str]:
    """For each metric, the peer with the best median."""
    out = {}
    for key, _, _ in report.METRICS:
        scored = [(e.summary()[key], name) for name, e in entries.items()
                  if name in PEERS and not e.skipped and e.summary()[key]]
        if scored:
            pick = min(scored) if key in report.LOWER_IS_BETTER else max(scored)
            out[key] = pick[1]
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m bench.peers [--runs N] [--only celery,rq,...] [--quick]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="rounds per system (median)")
    parser.add_argument("--only", default="", help="comma-separated subset of systems")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run (smoke test)")
    parser.add_argument("--output", default="peers", help="results/<name>.json and .md")
    args = parser.parse_args(argv)
    console = Console()
    console.width = max(console.width, 130)
    sizes, runs = harness.RoundSizes(), args.runs
    if args.quick:
        sizes, runs = harness.RoundSizes(single=200, drain=1000, latency=50), 1
    names = [*PEERS, *(f"taskyard ({k})" for k in TASKYARD_KINDS)]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only:
        names = [n for n in names if n in only or n.split(" ")[0] in only
                 or n.strip(")").split("(")[-1] in only]
    entries = {n: report.Entry(name=n) for n in names}
    servers = {kind: reachable(kind) for kind in ("redis", "postgres", "sqlite")}
    for name, entry in entries.items():
        need = PEERS.get(name) or name.strip(")").split("(")[-1]
        if name in PEERS and not peer_python(name).exists():
            entry.skipped = (f"no venv {peer_python(name).parent.parent.name}: run `make "
                             "bench-peers` (it installs bench/peers/requirements*.txt)")
            console.print(f"[yellow]skipping {name}: {entry.skipped}[/]")
        elif servers.get(need):
            entry.skipped = f"{need}: {servers[need]}"
            console.print(f"[yellow]skipping {name}: {entry.skipped}[/]")
    log = Path(tempfile.gettempdir()) / "taskyard-bench-peers-workers.log"
    console.print(f"peers benchmark: {runs} round(s); {sizes.single} single enqueues, "
                  f"{sizes.drain}-job drains, {sizes.latency} jobs 10 ms apart; log: {log}")
    began = time.monotonic()
    for run in range(1, runs + 1):
        for name, entry in entries.items():
            if entry.skipped:
                continue
            started = time.monotonic()
            if name in PEERS:
                result = run_peer(name, sizes, log)
                entry.configs = result.pop("configs", entry.configs)  # type: ignore[assignment]
            else:
                system = TaskyardSystem(name.strip(")").split("(")[-1])
                entry.configs = system.configs
                result = harness.run_round(system, sizes, log=log)
            entry.rounds.append(result)
            console.print(f"round {run}/{runs} {name}: {time.monotonic() - started:.0f}s"
                          + (f" [red]{result['errors']}[/]" if result.get("errors") else ""))
    ordered = list(entries.values())
    rows, ratios = ratio_rows(entries)
    best = best_peer_names(entries)
    doc = report.document(ordered, runs=runs, sizes=vars(sizes),
                          extra={"ratios": ratios, "best_peer": best,
                                 "elapsed_seconds": round(time.monotonic() - began)})
    title = f"taskyard vs peers — medians of {runs} round(s), one run on one machine"
    markdown = "\n\n".join([
        f"# {title}",
        f"Generated {doc['generated_at']} by `make bench-peers` on {doc['machine']['cpus']} "
        f"CPUs, Python {doc['machine']['python']}. Ratios above 1 mean taskyard is better "
        "(throughput: taskyard ÷ peer; latency: peer ÷ taskyard). See docs/benchmarks.md.",
        report.markdown_table(ordered, rows),
        "Best peer per column: " + ", ".join(f"{k} {v}" for k, v in best.items()) + ".",
        "Configurations:\n\n" + report.notes_markdown(ordered),
    ])
    report.write(args.output, doc, markdown)
    console.print(report.rich_table(ordered, title, rows))
    console.print(report.notes_markdown(ordered), markup=False)
    console.print(f"wrote bench/results/{args.output}.json and .md "
                  f"in {time.monotonic() - began:.0f}s")
    return 1 if any(e.errors() for e in ordered) else 0


if __name__ == "__main__":
    sys.exit(main())
