"""The demo app behind `make run`: a few kinds of jobs, a schedule and a traffic service, so
the terminal and the dashboard have something to show.

    taskyard --app examples.demo:app run      # what `make run` does
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from pydantic import BaseModel, Field

from taskyard import (
    JobContext,
    PeriodicService,
    PeriodicServiceConfig,
    Retry,
    Taskyard,
    exponential,
)

app = Taskyard()  # TASKYARD_BACKEND, else sqlite:///taskyard.db
log = logging.getLogger("taskyard.demo")


class Thumbnail(BaseModel):
    image_id: int = Field(ge=1)
    sizes: list[int] = [64, 256, 1024]


class Email(BaseModel):
    to: str
    subject: str


class Report(BaseModel):
    name: str


@app.task("images.thumbnail", queue="media", timeout=60)
def thumbnail(req: Thumbnail, ctx: JobContext) -> dict:
    """A sync job with progress: one step per size."""
    for i, size in enumerate(req.sizes, start=1):
        time.sleep(0.6)
        ctx.progress(100 * i / len(req.sizes), f"resized to {size}px")
    return {"image_id": req.image_id, "sizes": req.sizes}


@app.task("emails.send", queue="emails", retry=Retry(attempts=4, backoff=exponential(2)))
async def send_email(msg: Email, ctx: JobContext) -> str:
    """Fails on its first two attempts (a flaky SMTP server), then succeeds: 2 s, 4 s backoff."""
    await asyncio.sleep(0.1)
    if ctx.attempt < 3:
        raise ConnectionError(f"SMTP server refused the connection (attempt {ctx.attempt})")
    return f"sent to {msg.to}"


@app.task("reports.build", queue="reports")
async def build_report(req: Report, ctx: JobContext) -> dict:
    """Enqueued to run a few seconds ahead."""
    await asyncio.sleep(0.3)
    return {"report": req.name, "rows": random.randint(10, 500)}


@app.task("maintenance.sync_all")
async def sync_all(payload: dict) -> str:
    """What the cron schedule below runs every minute."""
    await asyncio.sleep(0.2)
    return "synced"


@app.task("payments.charge", queue="payments", retry=Retry(attempts=2, backoff=[1]))
async def charge(payload: dict) -> str:
    """Always fails: shows a job ending in `failed` after its retries."""
    raise ValueError(f"card declined for order {payload.get('order')}")


@app.task("gallery.publish", queue="media")
async def publish_gallery(payload: dict, ctx: JobContext) -> dict:
    """A workflow's fan-in: runs once every thumbnail of the gallery is made."""
    made = ctx.results("thumbs")  # the thumbnails' results, in order
    return {"gallery": payload["gallery"], "images": [m["image_id"] for m in made]}


app.schedule("sync-every-minute", cron="* * * * *", task="maintenance.sync_all", payload={})

# Every payment fails, so within a minute of `make run` the terminal shows this alert firing
# (a WARNING line from taskyard.alerts), once; see docs/alerts.md.
app.alert("payments-failing", kind="failure_rate", queue="payments", threshold=50, window=300, min_outcomes=3)


@app.service("demo-traffic", name="Demo traffic")
class DemoTraffic(PeriodicService):
    """Enqueues a handful of demo jobs every few seconds."""

    def __init__(self, app: Taskyard) -> None:
        super().__init__("demo-traffic", name="Demo traffic",
                         config=PeriodicServiceConfig(interval=4.0, run_on_start=True))
        self.app = app
        self.tick = 0

    async def execute(self) -> None:
        self.tick += 1
        n = self.tick
        await self.app.aenqueue("images.thumbnail", {"image_id": n})
        await self.app.aenqueue("emails.send", {"to": f"user{n}@example.com", "subject": "Welcome"})
        await self.app.aenqueue("reports.build", {"name": f"daily-{n}"}, delay=5)
        if n % 3 == 0:
            await self.app.aenqueue("payments.charge", {"order": n})
            await self._summarise()
        if n % 5 == 1:
            # A workflow: four thumbnails side by side (fan-out), then one publish (fan-in);
            # the dashboard's Workflows page draws it.
            wf = self.app.workflow("publish-gallery")
            thumbs = wf.map(thumbnail, [Thumbnail(image_id=100 * n + i) for i in range(4)], name="thumbs")
            wf.step("gallery.publish", {"gallery": n}, after=thumbs)
            await wf.aenqueue()
        if n % 15 == 2:
            # Once a minute a batch import: a backlog the queue-depth chart can show draining.
            await self.app.aenqueue_many(
                [("images.thumbnail", {"image_id": 1000 * n + i}) for i in range(60)]
            )

    async def _summarise(self) -> None:
        """One line in the terminal every few ticks: what the queues hold so far."""
        totals: dict[str, int] = {}
        for per_status in (await self.app.acounts()).values():
            for status, count in per_status.items():
                totals[status] = totals.get(status, 0) + count
        log.info(
            "so far: %d completed, %d failed, %d running, %d pending, %d scheduled",
            *(totals.get(s, 0) for s in ("completed", "failed", "running", "pending", "scheduled")),
        )
