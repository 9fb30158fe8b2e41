"""The results table: one row per run (backend x topology x fault), as JSON and Markdown.

Columns: acknowledged jobs, executions, faults injected, lost (acknowledged but not stored) /
stuck (not terminal when the run ended; both must be 0), failed by faults ("dropped", must be 0), duplicate starts with their causes, unexplained duplicates (must be 0),
misfire=all fires missing / doubled (must be 0/0), leader takeover after SIGKILL and SIGSTOP
(longest), recovery (longest time from a holder's death to its job's next start), the
longest wait of a job beyond its due time (first start - run_at), and the verdict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ("main", "markdown", "summary_line", "write_results", "write_run")

HEADER = (
    "| backend | topology | fault | seed | jobs | runs | faults | lost / stuck | dropped | duplicates (causes) "
    "| fires missing/doubled (all) | takeover SIGKILL / SIGSTOP | recovery | longest wait | verdict | taskyard |"
)


def _takeover(row: dict[str, Any], kind: str) -> str:
    values = [t["seconds"] for t in row["takeovers"] if t["kind"] == kind]
    if not values:
        return "-"
    if any(v is None for v in values):
        return "none"
    return f"{max(values):.1f}s ({len(values)})"


def _duplicates(report: dict[str, Any]) -> str:
    causes = report["duplicate_causes"]
    if not causes:
        return "0"
    parts = ", ".join(f"{n} {cause}" for cause, n in sorted(causes.items(), key=lambda kv: -kv[1]))
    return f"{sum(causes.values())} ({parts})"


def _recovery(report: dict[str, Any]) -> str:
    """Longest time from a holder's death (kill or crash) to its job's next start."""
    delays = [d["delay"] for d in report["duplicates"] if d["cause"] in ("holder SIGKILLed", "holder crashed")]
    return f"{max(delays):.1f}s" if delays else "-"


def _fires(report: dict[str, Any]) -> str:
    missing = sum(v for k, v in report["fires_missing"].items() if k.endswith("all"))
    doubled = sum(report["fires_doubled"].values())
    return f"{missing}/{doubled}" if report["fires_missing"] else "-"


def _fault(scenario: dict[str, Any]) -> str:
    mix = scenario.get("mix")
    return f"{scenario['fault']} ({mix} jobs)" if mix else scenario["fault"]


def _verdict(row: dict[str, Any]) -> str:
    if row.get("error"):
        return "harness error: " + " ".join(str(row["error"]).split()).replace("|", "/")
    if row["skipped"]:
        return f"skipped: {row['skipped']}"
    if row["ok"]:
        return "PASS"
    kinds = sorted({v["invariant"] for v in row["report"]["violations"]})
    return "FAIL: " + ", ".join(kinds)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The results table in Markdown."""
    lines = [HEADER, "|" + "|".join("---" for _ in range(16)) + "|"]
    for row in rows:
        sc, rep = row["scenario"], row["report"]
        if row["skipped"] or row.get("error"):
            lines.append(f"| {sc['backend']} | {sc['topology']} | {_fault(sc)} | {sc['seed']} |" + " |" * 10
                         + f" {_verdict(row)} | {row.get('revision', '')} |")
            continue
        lines.append(
            f"| {sc['backend']} | {sc['topology']} | {_fault(sc)} | {sc['seed']} | {rep['acknowledged']} "
            f"| {rep['executions']} | {row['faults_injected']} | {rep['lost']} / {rep.get('stuck', 0)} | {rep['dropped']} "
            f"| {_duplicates(rep)} | {_fires(rep)} | {_takeover(row, 'SIGKILL')} / {_takeover(row, 'SIGSTOP')} "
            f"| {_recovery(rep)} | {rep['longest_wait']:.1f}s | {_verdict(row)} | {row.get('revision', '')} |"
        )
    return "\n".join(lines) + "\n"


def violations_text(rows: Sequence[dict[str, Any]], limit: int = 8) -> str:
    """Each failed run's violations (the first `limit` of each), for the Markdown file."""
    out = []
    for row in rows:
        found = row["report"]["violations"]
        if not found:
            continue
        out.append(f"\n### {row['scenario']['id']} — {len(found)} violation(s)\n")
        for v in found[:limit]:
            job = f" `{v['job']}`" if v["job"] else ""
            out.append(f"- **{v['invariant']}**{job}: {v['detail']}")
        if len(found) > limit:
            out.append(f"- … {len(found) - limit} more in results.json")
    return "\n".join(out) + "\n" if out else ""


def summary_line(row: dict[str, Any]) -> str:
    """One line per finished run, for the terminal."""
    if row["skipped"] or row.get("error"):
        return f"   {_verdict(row)}"
    rep = row["report"]
    return (
        f"   {_verdict(row)} in {row['seconds']:.0f}s: jobs {rep['acknowledged']}, runs {rep['executions']}, "
        f"faults {row['faults_injected']}, lost {rep['lost']}, stuck {rep.get('stuck', 0)}, dropped {rep['dropped']}, "
        f"duplicates {_duplicates(rep)}, fires missing/doubled {_fires(rep)}, "
        f"takeover {_takeover(row, 'SIGKILL')} / {_takeover(row, 'SIGSTOP')}"
    )


def write_run(row: dict[str, Any], workdir: Path) -> None:
    """One run's full outcome, beside its logs and histories."""
    (workdir / "outcome.json").write_text(json.dumps(row, indent=2, default=str))


def write_results(rows: Sequence[dict[str, Any]], out: Path) -> str:
    """results.json and results.md under `out`; returns the Markdown."""
    (out / "results.json").write_text(json.dumps(list(rows), indent=2, default=str))
    text = markdown(rows) + violations_text(rows)
    (out / "results.md").write_text(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m chaos.report A/results.json B/results.json ...`: one table from several runs
    (a later file's row replaces an earlier one of the same scenario), in Markdown."""
    import sys

    rows: dict[str, dict[str, Any]] = {}
    for name in argv if argv is not None else sys.argv[1:]:
        for row in json.loads(Path(name).read_text()):
            rows[row["scenario"]["id"]] = row
    sys.stdout.write(markdown(list(rows.values())) + violations_text(list(rows.values())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
