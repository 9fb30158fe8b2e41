"""The producer process: enqueues a seeded mix of jobs through the public API and records each
call before it is made (`invoke`) and after it returned (`ack`, with the jobs the API gave back).

`python -m chaos.producer --app chaos.app:app --seconds 20 --rate 40 --seed 7 --mix storm`.
Half the jobs go one by one (`enqueue`), half in batches (`enqueue_many`), so a SIGKILL can land
in the middle of a batch. Job ids are made here, so a batch cut by a kill is either all stored
or not at all — the checker verifies that too.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from chaos import history
from taskyard.cli.loading import load_app
from taskyard.core import ids

__all__ = ("MIXES", "main", "next_job")

#: Workload mixes: (task, weight) pairs.
MIXES: dict[str, list[tuple[str, float]]] = {
    "storm": [("chaos.work", 0.75), ("chaos.flaky", 0.1), ("chaos.unique", 0.15)],
    # A crash takes its whole process (and its other jobs) down: keep them rare.
    "handlers": [("chaos.work", 0.8), ("chaos.flaky", 0.1), ("chaos.crash", 0.02),
                 ("chaos.hang", 0.04), ("chaos.huge", 0.04)],
    "default": [("chaos.default", 1.0)],
    "poison": [("chaos.work", 0.995), ("chaos.poison", 0.005)],
    # Handlers a worker must stop from outside (issue 11): children killed at their timeout or
    # memory limit, children that segfault (once, or on every run), a thread spinning past its
    # timeout. Each costs a fresh child process (~0.3 s of CPU): keep them rare.
    "isolation": [("chaos.work", 0.86), ("chaos.iso_hang", 0.03), ("chaos.iso_leak", 0.02),
                  ("chaos.iso_crash", 0.03), ("chaos.iso_poison", 0.01), ("chaos.thread_spin", 0.03)],
    "v2": [("chaos.work", 0.5), ("chaos.v2", 0.5)],
}


def next_job(rng: random.Random, mix: str, n: int) -> dict[str, Any]:
    """One enqueue item of `mix`: task, payload and a fresh client-made id."""
    tasks, weights = zip(*MIXES[mix], strict=True)
    task = rng.choices(tasks, weights)[0]
    # Most jobs are short; one in ten runs long enough for a kill to land mid-run.
    sleep = rng.uniform(0.3, 1.5) if rng.random() < 0.1 else rng.uniform(0.0, 0.05)
    payload: dict[str, Any] = {"n": n, "sleep": round(sleep, 3)}
    if task == "chaos.flaky":
        payload["fail_times"] = 2
    if task == "chaos.unique":
        payload["key"] = f"k{rng.randrange(8)}"
        payload["sleep"] = 0.3
    return {"task": task, "payload": payload, "job_id": ids.new_id()}


def main(argv: list[str] | None = None) -> int:
    """Enqueue at `--rate` jobs per second for `--seconds` seconds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", default="chaos.app:app")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mix", default="storm", choices=sorted(MIXES))
    args = parser.parse_args(argv)
    app = load_app(args.app)
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.seconds
    n = 0
    try:
        while time.monotonic() < deadline:
            started = time.monotonic()
            bulk = rng.random() < 0.5
            items = [next_job(rng, args.mix, n + i) for i in range(args.batch if bulk else 1)]
            n += len(items)
            requested = [item["job_id"] for item in items]
            history.record("invoke", ids=requested, bulk=bulk)
            try:
                if bulk:
                    jobs = app.enqueue_many(items)
                else:
                    item = items[0]
                    jobs = [app.enqueue(item["task"], item["payload"], job_id=item["job_id"])]
            except Exception as exc:  # an outage: the outcome is unknown, keep going
                history.record("fail", ids=requested, error=f"{type(exc).__name__}: {exc}"[:300])
                time.sleep(0.2)
                continue
            history.record(
                "ack", ids=requested,
                jobs=[{"id": j.id, "task": j.task, "unique_key": j.unique_key} for j in jobs],
            )
            pause = len(items) / args.rate - (time.monotonic() - started)
            if pause > 0:
                time.sleep(pause)
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
