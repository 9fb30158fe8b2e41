"""The benchmark kit: the probe's published totals, percentiles, and one tiny memory round."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.peers import harness
from bench.system import TaskyardSystem

REPO = Path(__file__).resolve().parents[2]


def test_percentile_interpolates() -> None:
    values = [float(v) for v in range(1, 101)]
    assert harness.percentile(values, 50) == 50.5
    assert harness.percentile(values, 0) == 1.0
    assert harness.percentile(values, 100) == 100.0
    assert harness.percentile([], 99) is None


def test_probe_publishes_every_hit_of_a_process_that_exits(tmp_path: Path) -> None:
    # A burst worker ends on its own; its last hits must reach the file all the same.
    code = ("import time\nfrom bench.peers import harness\n"
            "for _ in range(5000):\n    harness.hit(time.time() - 0.001)\n")
    env = {**os.environ, harness.PROBE_ENV: str(tmp_path), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    tally = harness.read_tally(tmp_path)
    assert tally.count == 5000
    assert len(tally.latencies) == 5000
    assert all(lat >= 0.001 for lat in tally.latencies)
    assert tally.rate() is not None


def test_memory_round_measures_every_workload() -> None:
    sizes = harness.RoundSizes(single=50, drain=300, latency=10, interval=0.001, timeout=60)
    result = harness.run_round(TaskyardSystem("memory", concurrency=10), sizes)
    assert "errors" not in result
    for key in ("enqueue_single", "enqueue_bulk", "drain_one"):
        assert isinstance(result[key], float) and result[key] > 0
    latency = result["latency"]
    assert isinstance(latency, dict)
    assert 0 < latency["p50"] <= latency["p99"]
