"""Two versions of one app for the rolling-deploy test: `APP_VERSION` (1 or 2) picks the
payload of the schedule both declare, and which version-only schedule exists.
"""

from __future__ import annotations

import os

from taskyard import Taskyard

VERSION = os.environ.get("APP_VERSION", "1")
app = Taskyard(name=f"versioned-v{VERSION}")


@app.task("tick", queue="ticks")
async def tick(payload: dict) -> None:
    """Nothing to do: the test reads which version's definition each job came from."""


app.schedule("shared", task="tick", every=1, payload={"version": VERSION})
app.schedule(f"only-v{VERSION}", task="tick", every=1, payload={"version": VERSION})
