"""The benchmark kit: the probe's published totals, percentiles, memory figures, one tiny memory round."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench import report
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
    for key in ("enqueue_single", "enqueue_bulk", "drain_one", "drain_startup_one",
                "worker_ready"):
        assert isinstance(result[key], float) and result[key] > 0
    latency = result["latency"]
    assert isinstance(latency, dict)
    assert 0 < latency["p50"] <= latency["p99"]


def test_tree_rss_sums_a_process_and_its_children() -> None:
    # A parent that forks a child holding 64 MiB: the tree's RSS counts both processes.
    code = ("import os, sys, time\n"
            "if os.fork() == 0:\n    block = bytearray(64 << 20)\n"
            "    sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(60)\n"
            "else:\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        alone = harness.tree_rss(os.getpid())
        total = harness.tree_rss(proc.pid)
        assert alone is not None and total is not None
        assert total >= 64 << 20
    finally:
        harness.stop_process(proc)
        assert proc.stdout is not None
        proc.stdout.close()
    assert harness.tree_rss(proc.pid) is None


def test_store_per_10k_scales_the_delta() -> None:
    assert harness.store_per_10k(1_000, 51_000, 1_000) == 500_000
    assert harness.store_per_10k(None, 5, 1_000) is None


def test_summary_keeps_start_up_drains_out_of_the_steady_drain() -> None:
    entry = report.Entry(name="x", rounds=[{
        "drain_one": 100.0, "drain_best": 150.0, "drain_startup_one": 900.0,
        "drain_startup_best": 80.0, "rss_idle": 3 * 2**20, "store_per_10k": 2**20}])
    summary = entry.summary()
    assert summary["drain_best"] == 150.0
    assert summary["drain_startup"] == 900.0
    assert summary["rss_idle"] == 3.0
    assert summary["store_per_10k"] == 1.0
