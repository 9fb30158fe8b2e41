"""Benchmarks: `python -m bench.run` (taskyard's backends) and `python -m bench.peers` (vs peers)."""
