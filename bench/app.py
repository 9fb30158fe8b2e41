"""The benchmark's taskyard app: one no-op task that reports to the probe.

Workers load it with `taskyard --app bench.app:app --backend URL worker`; `bench.system`
builds its own instance per store with `build_app(url)`.
"""

from __future__ import annotations

import os
from typing import Any

from bench.peers import harness
from taskyard import Taskyard

QUEUE = "bench"


async def noop(payload: dict[str, Any]) -> None:
    """Do nothing but tell the probe (and the enqueue time, for the latency workload)."""
    harness.hit(payload.get("sent_at"))


def build_app(url: str | None = None) -> Taskyard:
    """A Taskyard on `url` (default: `TASKYARD_BACKEND`, else memory) with the no-op task."""
    app = Taskyard(url or os.environ.get("TASKYARD_BACKEND", "memory://"))
    app.task("bench.noop", queue=QUEUE)(noop)
    return app


app = build_app()
