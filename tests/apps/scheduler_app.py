"""An app with one every-second schedule per misfire policy, for the scheduler failover test.

The backend comes from `TASKYARD_BACKEND`, like any app.
"""

from __future__ import annotations

from taskyard import Taskyard

app = Taskyard()


@app.task("tick", queue="ticks")
async def tick(payload: dict) -> None:
    """Nothing to do: the test counts the jobs the scheduler made."""


for policy in ("skip", "once", "all"):
    app.schedule(f"every-second-{policy}", task="tick", every=1, misfire=policy, payload={"policy": policy})
