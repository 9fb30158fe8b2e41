"""A second app beside `scheduler_app` on the same store (the declared-schedules test): its own
every-second schedule, and the same `tick` task, which ever app leads enqueues for both.
"""

from __future__ import annotations

from taskyard import Taskyard

app = Taskyard()


@app.task("tick", queue="ticks")
async def tick(payload: dict) -> None:
    """Nothing to do: the test counts the jobs the scheduler made."""


app.schedule("other-every-second", task="tick", every=1, payload={"app": "other"})
