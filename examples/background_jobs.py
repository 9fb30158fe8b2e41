"""Seed 002 — the background jobs of a subscription product: six typed job types, retries after
1, 5 and 15 minutes, per-subscription scan schedules by tier (Basic / Plus / Premium) as schedule
sets, and reminders as delayed notifications.

    taskyard --app examples.background_jobs:app run                  # web dev: one process
    taskyard --app examples.background_jobs:app run --only api       # production: the API ...
    taskyard --app examples.background_jobs:app worker --queues scans,analysis,reports,notifications
    taskyard --app examples.background_jobs:app run --only scheduler,maintenance,services --no-http
    taskyard --app examples.background_jobs:app enqueue darkwatch.scan '{"subscription_id": 1}'
    taskyard --app examples.background_jobs:app schedules list

The seed's admin procedures are taskyard's API: `POST /api/v1/jobs` runs a job now
(`scheduler.runJobNow`), `GET /api/v1/jobs/{id}` is `scheduler.getJobStatus`, and
`POST /api/v1/schedules/sets/tier:premium/apply` re-tiers a subscription. The product's data
(`Store`: subscriptions, watchlists, alerts, reports, sent notifications, ...) lives in the app's
own database, a table `example_records` beside taskyard's (`examples/records.py`; SQLite or
PostgreSQL), so the API, worker and scheduler processes above share it. The process with the
`services` role gives every subscription its tier's schedules at start. Handlers are idempotent,
so a job that runs twice (at-least-once delivery) creates nothing twice.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from examples.records import Records
from taskyard import JobContext, Retry, Taskyard
from taskyard.clock import Clock
from taskyard.core.job import Job
from taskyard.core.schedule import Schedule
from taskyard.schedules import ScheduleTemplate
from taskyard.services.base import Service

#: One run and three retries, 1, 5 and 15 minutes apart.
RETRY = Retry(attempts=4, backoff=[60, 300, 900])
#: Spread each tier's fires over 5 minutes so thousands of subscriptions do not start together.
JITTER = 300.0


class Tier(enum.StrEnum):
    """Subscription tiers; each has a schedule set `tier:<name>`."""

    BASIC = "basic"
    PLUS = "plus"
    PREMIUM = "premium"


MONTHLY, WEEKLY, DAILY = "0 {h} 1 * *", "0 {h} * * 1", "0 {h} * * *"


def _tier_templates(darkwatch: str, hometitle: str, reports: str | None, realtime: bool) -> list[ScheduleTemplate]:
    templates = [
        ScheduleTemplate("darkwatch", "darkwatch.scan", cron=darkwatch.format(h=2), jitter=JITTER),
        ScheduleTemplate("hometitle", "hometitle.scan", cron=hometitle.format(h=3), jitter=JITTER),
    ]
    if reports is not None:
        period = "weekly" if reports == WEEKLY else "monthly"
        templates.append(ScheduleTemplate("reports", "reports.generate", cron=reports.format(h=6),
                                          payload={"period": period}, jitter=JITTER))
    if realtime:  # Premium's "real-time monitoring": a light check every 15 minutes
        templates.append(ScheduleTemplate("darkwatch-realtime", "darkwatch.scan", every=900,
                                          payload={"mode": "realtime"}))
    return templates


TIERS: dict[Tier, list[ScheduleTemplate]] = {
    Tier.BASIC: _tier_templates(MONTHLY, MONTHLY, None, False),
    Tier.PLUS: _tier_templates(WEEKLY, WEEKLY, MONTHLY, False),
    Tier.PREMIUM: _tier_templates(DAILY, DAILY, WEEKLY, True),
}


# -- payloads, one model per job type ---------------------------------------------------------
class DarkwatchScan(BaseModel):
    subscription_id: int
    mode: Literal["scheduled", "realtime"] = "scheduled"


class VoiceprintBatch(BaseModel):
    limit: int = 50


class HometitleScan(BaseModel):
    subscription_id: int


class RemoveBrokersProcess(BaseModel):
    limit: int = 100


class ReportsGenerate(BaseModel):
    subscription_id: int
    period: Literal["weekly", "monthly"] = "monthly"


class NotificationsSend(BaseModel):
    user_id: int
    channel: Literal["email", "push", "sms"] = "email"
    template: str
    data: dict[str, str] = {}


# -- the product's data and engines (a stand-in, in the app's database) -----------------------
class Store:
    """Subscriptions, watchlists, breaches, properties, county records, analysis jobs, removal
    requests, and what the jobs produce (alerts, reports, sent notifications): JSON records in the
    app's own database (`Records`), so API, worker and scheduler processes share them."""

    def __init__(self, records: Records, *, provider_failures: int = 0) -> None:
        self.records = records
        #: Calls to the delivery provider that should fail first, in this process (to show retries).
        self.provider_failures = provider_failures

    async def seed_demo(self) -> None:
        """Three subscriptions, one of each tier, with something to find (kept if present)."""
        add = self.records.add
        for sid, user, tier in ((1, 10, Tier.BASIC), (2, 20, Tier.PLUS), (3, 30, Tier.PREMIUM)):
            await add("subscriptions", str(sid), {"user_id": user, "tier": str(tier)})
        for sid, emails in ((1, ["ann@example.com"]), (2, ["bob@example.com"]),
                            (3, ["cy@example.com", "cy@work.example"])):
            await add("watchlists", str(sid), {"emails": emails})
        for email, breach in (("cy@work.example", "forum-2025"), ("bob@example.com", "shop-2024")):
            await add("breaches", f"{email}:{breach}", {"email": email, "breach": breach})
        await add("properties", "3", {"APN-77": "Cy Doe"})
        await add("county_records", "APN-77", {"owner": "Cy Doe"})
        for i in range(1, 4):
            await add("analysis_jobs", str(i), {"status": "PENDING", "audio": f"call-{i}.wav"})
        for i, broker in ((1, "peoplefinder"), (2, "databroker-x")):
            await add("removal_requests", str(i), {"broker": broker, "status": "PENDING"})

    async def subscriptions(self) -> dict[int, dict[str, Any]]:
        return {int(k): v for k, v in (await self.records.all("subscriptions")).items()}

    async def user_of(self, subscription_id: int) -> int:
        sub = await self.records.get("subscriptions", str(subscription_id))
        if sub is None:
            raise LookupError(f"no subscription {subscription_id}")
        return int(sub["user_id"])

    async def deliver(self, key: str, message: dict[str, Any]) -> bool:
        """Send through the provider; the job id is the idempotency key. False if already sent."""
        if await self.records.get("sent", key) is not None:
            return False
        if self.provider_failures > 0:
            self.provider_failures -= 1
            raise ConnectionError("notification provider unavailable")
        return await self.records.add("sent", key, message)


def create_app(backend: str | None = None, *, clock: Clock | None = None, provider_failures: int = 0,
               demo: bool = True) -> Taskyard:
    """The jobs app: tasks, global schedules, tier sets and the startup service. `app.store` is
    its data (in the app's database); `demo` fills it with three subscriptions at startup."""
    app = Taskyard(backend, clock=clock)
    db = Store(Records(app), provider_failures=provider_failures)
    app.store = db

    async def alert(key: str, subscription_id: int, kind: str, detail: str) -> bool:
        """Record an alert once and notify its owner once (the alert key makes both unique)."""
        if not await db.records.add("alerts", key, {"subscription": subscription_id, "kind": kind, "detail": detail}):
            return False
        await app.aenqueue("notifications.send", {
            "user_id": await db.user_of(subscription_id), "template": f"alert.{kind}", "data": {"detail": detail},
        }, unique_key=f"notify:{key}")
        return True

    @app.task("darkwatch.scan", queue="scans", retry=RETRY, timeout=600,
              unique="darkwatch:{subscription_id}:{mode}")
    async def darkwatch_scan(req: DarkwatchScan) -> dict[str, Any]:
        """Match the subscription's watchlist against the breach feed; alert on new hits."""
        watched = set((await db.records.get("watchlists", str(req.subscription_id)) or {}).get("emails", ()))
        breaches = (await db.records.all("breaches")).values()
        hits = [(b["email"], b["breach"]) for b in breaches if b["email"] in watched]
        new = [await alert(f"darkwatch:{email}:{breach}", req.subscription_id, "breach", f"{email} in {breach}")
               for email, breach in hits]
        return {"checked": len(watched), "hits": len(hits), "new_alerts": sum(new)}

    @app.task("voiceprint.batch", queue="analysis", retry=RETRY, timeout=900, unique="voiceprint")
    async def voiceprint_batch(req: VoiceprintBatch, ctx: JobContext) -> dict[str, int]:
        """Run the (stand-in) model over pending analysis jobs, a batch at a time."""
        jobs = await db.records.all("analysis_jobs")
        pending = [i for i, j in jobs.items() if j["status"] == "PENDING"][: req.limit]
        for n, job_id in enumerate(pending, start=1):
            record = jobs[job_id]
            score = hashlib.sha256(record["audio"].encode()).digest()[0] / 255
            await db.records.put("analysis_jobs", job_id, {**record, "status": "DONE", "synthetic_score": round(score, 3)})
            ctx.progress(100 * n / len(pending), f"{n}/{len(pending)} analysed")
            await asyncio.sleep(0)  # inference would yield here; keep the worker responsive
        return {"analysed": len(pending)}

    @app.task("hometitle.scan", queue="scans", retry=RETRY, timeout=600, unique="hometitle:{subscription_id}")
    async def hometitle_scan(req: HometitleScan) -> dict[str, int]:
        """Compare each watched parcel's owner with the county record; alert on a change."""
        watched = await db.records.get("properties", str(req.subscription_id)) or {}
        changed = 0
        for parcel, known_owner in watched.items():
            owner = (await db.records.get("county_records", parcel) or {}).get("owner", known_owner)
            if owner != known_owner:
                changed += await alert(f"hometitle:{parcel}:{owner}", req.subscription_id, "title",
                                       f"{parcel} now recorded to {owner}")
                await db.records.put("properties", str(req.subscription_id), {**watched, parcel: owner})
        return {"parcels": len(watched), "changes": changed}

    @app.task("removebrokers.process", queue="scans", retry=RETRY, unique="removebrokers")
    async def removebrokers_process(req: RemoveBrokersProcess) -> dict[str, int]:
        """Submit pending removal requests; each request's outcome is its own status."""
        requests = await db.records.all("removal_requests")
        pending = [k for k, r in requests.items() if r["status"] == "PENDING"][: req.limit]
        for key in pending:
            await db.records.put("removal_requests", key, {**requests[key], "status": "SUBMITTED"})
        return {"submitted": len(pending)}

    @app.task("reports.generate", queue="reports", retry=RETRY, timeout=300,
              unique="report:{subscription_id}:{period}")
    async def reports_generate(req: ReportsGenerate, ctx: JobContext) -> dict[str, Any]:
        """Compile the subscription's alerts into a report, saved under a key per period."""
        day = app.clock.now().date()
        start = day - timedelta(days=7 if req.period == "weekly" else 30)
        key = f"{req.subscription_id}/{req.period}/{start.isoformat()}"
        alerts = [a for a in (await db.records.all("alerts")).values() if a["subscription"] == req.subscription_id]
        items = "".join(f"<li>{a['detail']}</li>" for a in alerts)
        await db.records.put("reports", key, {"html": f"<h1>{req.period.title()} report from {start}</h1><ul>{items}</ul>"})
        await app.aenqueue("notifications.send", {
            "user_id": await db.user_of(req.subscription_id), "template": "report.ready", "data": {"report": key},
        }, unique_key=f"notify:report:{key}")
        return {"report": key, "alerts": len(alerts)}

    @app.task("notifications.send", queue="notifications", retry=RETRY, timeout=30)
    async def notifications_send(msg: NotificationsSend, ctx: JobContext) -> dict[str, Any]:
        """Deliver one e-mail / push / SMS; a re-run of the same job never sends twice."""
        sent = await db.deliver(ctx.job.id, msg.model_dump())
        return {"channel": msg.channel, "template": msg.template, "sent": sent}

    app.schedule("voiceprint-batch", every=300, task="voiceprint.batch", payload={})
    app.schedule("removebrokers-hourly", cron="0 * * * *", task="removebrokers.process", payload={})
    for tier, templates in TIERS.items():
        app.schedules.define_set(f"tier:{tier}", templates)

    @app.service("subscription-schedules", name="Subscription schedules")
    class SubscriptionSchedules(Service):
        """At start, gives every subscription in the database its tier's schedules (the seed's
        `registerSchedules`); sets replace an owner's schedules, so this is safe on every start."""

        async def on_start(self) -> None:
            if demo:
                await db.seed_demo()
            for subscription_id, sub in (await db.subscriptions()).items():
                await schedule_for_subscription(app, subscription_id, sub["tier"])

    return app


# -- what the product calls when subscriptions change -----------------------------------------
def owner_of(subscription_id: int) -> str:
    """The schedule owner key of a subscription."""
    return f"subscription:{subscription_id}"


async def schedule_for_subscription(app: Taskyard, subscription_id: int, tier: Tier | str) -> list[Schedule]:
    """Give a subscription exactly its tier's schedules (on signup or a tier change)."""
    return await app.schedules.aapply_set(
        f"tier:{Tier(tier)}", owner=owner_of(subscription_id), payload={"subscription_id": subscription_id}
    )


async def remove_schedules_for_subscription(app: Taskyard, subscription_id: int) -> int:
    """Drop every schedule of a cancelled subscription; returns how many."""
    return await app.schedules.aremove_owner(owner_of(subscription_id))


async def remind(app: Taskyard, user_id: int, template: str, at: datetime, **data: str) -> Job:
    """A reminder: a notification delayed until `at`. Asking twice for the same one is a no-op."""
    return await app.aenqueue(
        "notifications.send", {"user_id": user_id, "template": template, "data": data},
        run_at=at, unique_key=f"reminder:{user_id}:{template}:{at.isoformat()}",
    )


app = create_app()
