"""Turning benchmark rounds into figures: medians, the JSON document, Markdown and rich tables."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.peers.harness import median

RESULTS = Path(__file__).resolve().parent / "results"

#: (key in a summary, column title, unit) in table order.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("enqueue_single", "enqueue 1-by-1", "jobs/s"),
    ("enqueue_bulk", "enqueue bulk", "jobs/s"),
    ("drain_one", "drain 1 proc", "jobs/s"),
    ("drain_best", "drain 2 cores", "jobs/s"),
    ("p50", "p50", "ms"),
    ("p95", "p95", "ms"),
    ("p99", "p99", "ms"),
    ("worker_ready", "worker ready", "s"),
    ("drain_startup", "drain incl. start-up", "jobs/s"),
    ("rss_idle", "idle worker RSS", "MiB"),
    ("store_per_10k", "store per 10k jobs", "MiB"),
)
LOWER_IS_BETTER = {"p50", "p95", "p99", "worker_ready", "rss_idle", "store_per_10k"}
#: Rounds record bytes; the tables show MiB.
SCALE = {"rss_idle": 1 / 2**20, "store_per_10k": 1 / 2**20}


@dataclass
class Entry:
    """All rounds of one system, and why it was skipped or what failed."""

    name: str
    configs: dict[str, str] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float | None]:
        """Median over rounds of each metric, in the unit of its column.

        `drain_best` and `drain_startup` are the best drain config measured in each round.
        """
        def best(r: dict[str, Any], prefix: str) -> float | None:
            return max((v for k, v in r.items() if k.startswith(prefix) and v
                        and (prefix != "drain_" or not k.startswith("drain_startup_"))),
                       default=None)

        def values(key: str) -> list[float | None]:
            if key in ("p50", "p95", "p99"):
                return [(r.get("latency") or {}).get(key) for r in self.rounds]
            if key == "drain_best":
                return [best(r, "drain_") for r in self.rounds]
            if key == "drain_startup":
                return [best(r, "drain_startup_") for r in self.rounds]
            scale = SCALE.get(key, 1.0)
            return [None if r.get(key) is None else r[key] * scale for r in self.rounds]

        return {key: median(values(key)) for key, _, _ in METRICS}

    def errors(self) -> list[str]:
        """Failures reported by any round."""
        return [e for r in self.rounds for e in r.get("errors", [])]


def fmt(value: float | None, unit: str) -> str:
    """A figure for a table cell."""
    if value is None:
        return "-"
    if unit in ("ms", "s"):
        return f"{value:.2f}"
    if unit == "MiB":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def document(entries: Sequence[Entry], *, runs: int, sizes: dict[str, Any],
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON results document."""
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "cpus": _cpus()},
        "runs": runs,
        "sizes": sizes,
        "units": {key: unit for key, _, unit in METRICS},
        "systems": {e.name: {"summary": None if e.skipped else e.summary(), "configs": e.configs,
                             "skipped": e.skipped, "errors": e.errors(), "notes": e.notes,
                             "rounds": e.rounds} for e in entries},
        **(extra or {}),
    }


def _cpus() -> int | None:
    import os

    return os.cpu_count()


def markdown_table(entries: Sequence[Entry], extra_rows: Sequence[list[str]] = ()) -> str:
    """A Markdown table of the medians, one row per measured system."""
    head = ["system", *(f"{title} ({unit})" for _, title, unit in METRICS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in entries:
        if entry.skipped:
            continue
        summary = entry.summary()
        cells = [entry.name, *(fmt(summary[key], unit) for key, _, unit in METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.extend("| " + " | ".join(row) + " |" for row in extra_rows)
    return "\n".join(lines)


def notes_markdown(entries: Sequence[Entry]) -> str:
    """Configurations, skips and failures as a Markdown list."""
    lines = []
    for entry in entries:
        if entry.skipped:
            lines.append(f"- **{entry.name}**: skipped — {entry.skipped}")
            continue
        configs = "; ".join(f"{k}: {v}" for k, v in entry.configs.items())
        lines.append(f"- **{entry.name}**: {configs}" + "".join(f"; {n}" for n in entry.notes))
        lines.extend(f"  - failed: {e}" for e in entry.errors())
    return "\n".join(lines)


def rich_table(entries: Sequence[Entry], title: str, extra_rows: Sequence[list[str]] = ()) -> Any:
    """The same table for the terminal."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("system", style="bold", no_wrap=True)
    for _, name, unit in METRICS:
        table.add_column(f"{name}\n({unit})", justify="right")
    for entry in entries:
        if entry.skipped:
            continue
        summary = entry.summary()
        table.add_row(entry.name, *(fmt(summary[key], unit) for key, _, unit in METRICS))
    if extra_rows:
        table.add_section()
        for row in extra_rows:
            table.add_row(*row, style="cyan")
    return table


def write(stem: str, doc: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write `results/<stem>.json` and `.md`; return both paths."""
    RESULTS.mkdir(exist_ok=True)
    json_path, md_path = RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    md_path.write_text(markdown + "\n")
    return json_path, md_path
