"""The app of the security probes: one task that records nothing and returns its payload,
one declared schedule, and a service, so every dashboard page and API route has data."""

from __future__ import annotations

from taskyard import Taskyard

app = Taskyard()


@app.task("sec.echo", queue="default")
async def echo(payload: dict) -> dict:
    return payload


app.schedule("sec-nightly", cron="0 3 * * *", task="sec.echo", payload={"n": 1})


@app.task("sec.fail", queue="default")
async def fail(payload: dict) -> None:
    raise RuntimeError(str(payload.get("message", "failed")))
