"""The cost of `durable=1` (an enqueue waits for a replica's `WAIT`) on a Redis Cluster:
one-by-one and bulk enqueue with and without it, rounds interleaved (ABBA) so drifting load
from other processes favours neither side; prints medians and the ratio.

    python -m bench.durable --runs 5

Uses `TASKYARD_BENCH_REDIS_CLUSTER`, else a local 6-node cluster (see bench.system).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench.system import Storage, with_param
from taskyard import Taskyard


async def _rate(url: str, single: int, bulk: int) -> tuple[float, float]:
    app = Taskyard(url)
    app.task("bench.noop")(lambda payload: None)
    try:
        await app.aenqueue("bench.noop", {})  # connect and load the scripts first
        start = time.perf_counter()
        for _ in range(single):
            await app.aenqueue("bench.noop", {})
        one = single / (time.perf_counter() - start)
        start = time.perf_counter()
        for offset in range(0, bulk, 1000):
            await app.aenqueue_many([{"task": "bench.noop", "payload": {}}
                                     for _ in range(min(1000, bulk - offset))])
        many = bulk / (time.perf_counter() - start)
    finally:
        await app.aclose()
    return one, many


def main() -> None:
    """Command line: `python -m bench.durable [--runs N] [--single N] [--bulk N]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.durable", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--single", type=int, default=1000)
    parser.add_argument("--bulk", type=int, default=10_000)
    args = parser.parse_args()
    storage = Storage("redis-cluster")
    generation = 0
    figures: dict[str, list[tuple[float, float]]] = {"plain": [], "durable=1": []}
    for run in range(args.runs):
        order = ["plain", "durable=1"] if run % 2 == 0 else ["durable=1", "plain"]
        for side in order:
            url = storage.url(generation)
            if side != "plain":
                url = with_param(url, durable="1")
            try:
                figures[side].append(asyncio.run(_rate(url, args.single, args.bulk)))
            finally:
                storage.remove(generation)
                generation += 1
    storage.close()
    medians = {side: (statistics.median(f[0] for f in rows), statistics.median(f[1] for f in rows))
               for side, rows in figures.items()}
    print(f"{'':12} {'1-by-1 (jobs/s)':>16} {'bulk (jobs/s)':>14}")
    for side, (one, many) in medians.items():
        print(f"{side:12} {one:16,.0f} {many:14,.0f}")
    plain, durable = medians["plain"], medians["durable=1"]
    print(f"{'ratio':12} {durable[0] / plain[0]:16.2f} {durable[1] / plain[1]:14.2f}")


if __name__ == "__main__":
    main()
