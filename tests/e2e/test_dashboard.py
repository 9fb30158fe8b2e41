"""The dashboard in real headless Chromium (Playwright driving Debian's /usr/bin/chromium)
against a live server with a real worker: login, a job going from pending to completed,
retrying a failed job, pausing and resuming a queue and a schedule, and a viewer's read-only view.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskyard.app import Taskyard
from taskyard.http.dashboard.sampler import DepthSampler
from taskyard.services.manager import ServiceManager
from taskyard.services.worker import Worker, WorkerConfig
from tests.e2e.conftest import Creds, Env, make_app, need_chromium, serving
from tests.support.waiting import wait_until

SHOTS = Path(__file__).parent / "screenshots"
WAIT = 20_000  # ms: generous, only an upper bound on waiting for a condition


@dataclass
class Live:
    """A running server: its base URL, app, credentials."""

    url: str
    app: Taskyard
    creds: Creds


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    """uvicorn serving the full ASGI app on a free loopback port, with a worker running."""
    need_chromium()
    app = make_app()
    manager = ServiceManager()
    manager.register("worker", Worker(app, WorkerConfig(poll_interval=0.1, concurrency=2)), name="Worker")
    manager.register("depth-sampler", DepthSampler(app, interval=0.5), name="Queue depth sampler")
    async with serving(app, manager) as (url, creds):
        yield Live(url=url, app=app, creds=creds)


async def _login(browser, live: Live, token_header: dict[str, str]):
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await page.goto(live.url + "/")
    assert page.url.endswith("/login")
    await page.fill("#token", token_header["Authorization"].removeprefix("Bearer "))
    await page.click("#login")
    await page.wait_for_url(live.url + "/")
    return page


async def _shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_admin_flow(live: Live, browser) -> None:
    page = await _login(browser, live, live.creds.admin_jwt)
    await _shot(page, "overview")

    # Pause the queue in the dashboard, so a new job stays pending where we can see it.
    await page.goto(live.url + "/queues")
    await page.click("tr[data-queue='math'] button[data-action='pause']")
    await page.wait_for_selector("tr[data-queue='math'] .st-paused", timeout=WAIT)
    assert (await live.app.backend.queue_get(queue="math")).paused
    job = await live.app.aenqueue("math.add", {"a": 20, "b": 22})
    await page.goto(f"{live.url}/jobs/{job.id}")
    assert await page.text_content("h1 .status") == "pending"
    assert await page.text_content("#rescues") == "0 of 3"
    await _shot(page, "job-pending")

    # Resume it; the page refreshes itself until the worker has completed the job.
    await page.goto(live.url + "/queues")
    await page.click("tr[data-queue='math'] button[data-action='resume']")
    await page.wait_for_selector("tr[data-queue='math'] .st-running", timeout=WAIT)
    await page.goto(f"{live.url}/jobs/{job.id}")
    await page.wait_for_selector("h1 .st-completed", timeout=WAIT)
    assert (await page.text_content("#result")).strip() == "42"
    await _shot(page, "job-completed")

    # A failed job shows its error and traceback; retry runs it again.
    failing = await live.app.aenqueue("always.fail", {"why": "<b>not bold</b>"})
    await page.goto(f"{live.url}/jobs/{failing.id}")
    await page.wait_for_selector("h1 .st-failed", timeout=WAIT)
    assert "RuntimeError" in await page.text_content("details.attempt summary")
    assert "Traceback" in await page.text_content("pre.traceback")
    assert await page.locator("#payload b").count() == 0  # payloads render as text
    await _shot(page, "job-failed")
    await page.click("button[data-action='retry']")
    await page.wait_for_selector("p.notice", timeout=WAIT)
    async def retried() -> bool:
        return len((await live.app.aget_job(failing.id)).errors) >= 2

    await wait_until(retried, timeout=20, what="the retried job to fail a second time")

    # Pause and resume a schedule.
    await live.app.schedules.aadd("hourly-sum", task="math.add", cron="0 * * * *", payload={"a": 1, "b": 1})
    await page.goto(live.url + "/schedules")
    await page.click("tr[data-schedule='hourly-sum'] button[data-action='pause']")
    await page.wait_for_selector("tr[data-schedule='hourly-sum'] .st-paused", timeout=WAIT)
    assert (await live.app.schedules.aget("hourly-sum")).enabled is False
    await page.click("tr[data-schedule='hourly-sum'] button[data-action='resume']")
    # Enabled again; with no scheduler leading here its state says it cannot fire.
    await page.wait_for_selector("tr[data-schedule='hourly-sum'] button[data-action='pause']", timeout=WAIT)
    assert await page.text_content("tr[data-schedule='hourly-sum'] .state .status") == "cannot fire"
    assert (await live.app.schedules.aget("hourly-sum")).enabled is True

    # Restart a service: it runs again and the restart is counted.
    await page.goto(live.url + "/services")
    assert (await page.text_content("tr[data-service='worker'] td.restarts")).strip() == "0"
    await page.click("tr[data-service='worker'] button[data-action='restart']")
    await page.wait_for_selector("p.notice", timeout=WAIT)
    assert "Restarted." in await page.text_content("p.notice")
    assert (await page.text_content("tr[data-service='worker'] td.restarts")).strip() == "1"
    assert await page.locator("tr[data-service='worker'] .st-running").count() == 1
    await page.goto(live.url + "/")
    await page.wait_for_selector("#chart-throughput .bars rect", timeout=WAIT)
    await _shot(page, "overview-after")


async def test_viewer_sees_no_buttons_and_cannot_post(live: Live, browser) -> None:
    await live.app.aenqueue("always.fail", {})
    page = await _login(browser, live, live.creds.viewer_key)
    for path in ("/", "/queues", "/jobs", "/schedules", "/services"):
        await page.goto(live.url + path)
        assert await page.locator("main form[method=post], main button[data-action]").count() == 0, path
    await _shot(page, "viewer-queues")
    # A hand-made POST, even with the page's own CSRF token, is refused for a viewer.
    response = await page.request.post(live.url + "/queues/math/pause", form={"csrf": "x"},
                                       headers={"Origin": live.url})
    assert response.status == 403
    assert not (await live.app.backend.queue_get(queue="math")).paused


async def test_cross_site_post_is_refused(live: Live, browser) -> None:
    page = await _login(browser, live, live.creds.admin_key)
    await page.goto(live.url + "/queues")
    csrf = await page.get_attribute("input[name='csrf']", "value")
    response = await page.request.post(live.url + "/queues/math/pause", form={"csrf": csrf},
                                       headers={"Origin": "https://evil.example"})
    assert response.status == 403
    assert not (await live.app.backend.queue_get(queue="math")).paused
    headers = (await page.request.get(live.url + "/queues")).headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


async def test_login_returns_to_the_page_with_its_whole_query(env: Env) -> None:
    """In-process (no browser): the redirect to /login must carry every filter of the page."""
    c = env.client
    page = await c.get("/jobs?queue=math&status=failed")
    assert page.status_code == 303
    form = await c.get(page.headers["location"])
    assert form.status_code == 200
    fields = dict(re.findall(r'name="(csrf|next)" value="([^"]*)"', form.text))
    assert fields["next"] == "/jobs?queue=math&amp;status=failed"  # HTML-escaped in the form
    token = env.creds.admin_key["Authorization"].removeprefix("Bearer ")
    signed_in = await c.post("/login", data={"csrf": fields["csrf"], "token": token,
                                             "next": "/jobs?queue=math&status=failed"})
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/jobs?queue=math&status=failed"


async def test_services_page_shows_who_leads_each_duty(env: Env) -> None:
    """In-process (no browser): the Services page lists every lease with its holder."""
    from taskyard.services.leader import LeaderElector

    await env.app.open()
    mine = LeaderElector(env.app.backend, name="scheduler", ttl=30, service_id="leader:scheduler")
    env.ctx.manager.register(mine.id, mine, name="Leader election for the scheduler")
    await mine.attempt()
    await env.app.backend.leader_attempt_elect(name="maintenance", holder="box-7:99:zzzzzz", ttl=30)
    c = env.client
    form = await c.get(env.client.base_url.join("/login"))
    csrf = dict(re.findall(r'name="(csrf)" value="([^"]*)"', form.text))["csrf"]
    token = env.creds.admin_key["Authorization"].removeprefix("Bearer ")
    await c.post("/login", data={"csrf": csrf, "token": token, "next": "/services"})
    page = (await c.get("/services")).text
    scheduler_row = re.search(r'<tr data-lease="scheduler">(.*?)</tr>', page, re.S)
    maintenance_row = re.search(r'<tr data-lease="maintenance">(.*?)</tr>', page, re.S)
    alerter_row = re.search(r'<tr data-lease="alerter">(.*?)</tr>', page, re.S)
    assert scheduler_row and "this process" in scheduler_row.group(1) and mine.holder in scheduler_row.group(1)
    assert maintenance_row and "box-7" in maintenance_row.group(1) and ">99<" in maintenance_row.group(1)
    assert alerter_row and "nobody leads it" in alerter_row.group(1)
    assert "leads scheduler" in page


async def test_jobs_of_a_task_no_live_worker_knows_are_named_on_overview_and_queues(env: Env) -> None:
    """In-process: another app's jobs that no live worker knows get a warning naming the task;
    it goes once a live worker registers the task."""
    import html

    from taskyard.core.cluster import WorkerInfo
    from taskyard.core.ids import new_id
    from taskyard.core.job import JobDraft
    from taskyard.testing import drain

    c = env.client
    await env.app.open()
    backend = env.app.backend
    await backend.job_enqueue_many(drafts=[
        JobDraft(id=new_id(), task="images.thumbnail", queue="math", payload={"n": i}) for i in range(3)
    ])
    await env.app.aenqueue("math.add", {"a": 1, "b": 2})
    await drain(env.app)  # this app's worker runs its own job and leaves the others
    form = await c.get("/login")
    csrf = dict(re.findall(r'name="(csrf|next)" value="([^"]*)"', form.text))["csrf"]
    token = env.creds.viewer_key["Authorization"].removeprefix("Bearer ")
    assert (await c.post("/login", data={"csrf": csrf, "token": token, "next": "/"})).status_code == 303

    def warning(body: str) -> str | None:
        found = re.search(r'<div class="alert alert-pending" data-unclaimable="([^"]+)">(.*?)</div>', body, re.S)
        return None if found is None else found.group(1) + " " + html.unescape(re.sub(r"<[^>]+>|\s+", " ", found.group(2)))

    for path in ("/", "/queues"):
        page = await c.get(path)
        assert page.status_code == 200
        text = warning(page.text)
        assert text is not None and text.startswith("images.thumbnail"), path
        assert "3 job(s) waiting in math" in text and "no live worker knows this task" in text
    counts = (await env.app.acounts())["math"]
    assert (counts["pending"], counts["completed"], counts["failed"]) == (3, 1, 0)

    now = env.app.clock.now()
    await backend.worker_heartbeat(info=WorkerInfo(
        id="images-app", host="h", pid=1, queues=("*",), concurrency=1, started_at=now,
        last_heartbeat=now, tasks=("images.thumbnail",)))
    for path in ("/", "/queues"):
        page = await c.get(path)
        assert page.status_code == 200 and warning(page.text) is None, path
    workers = await c.get("/workers")
    assert "images.thumbnail" in workers.text
    assert 'class="num lost-threads">0<' in workers.text
    await backend.worker_heartbeat(info=WorkerInfo(
        id="images-app", host="h", pid=1, queues=("*",), concurrency=1, started_at=now,
        last_heartbeat=now, tasks=("images.thumbnail",), lost_threads=2))
    workers = await c.get("/workers")
    assert 'class="num lost-threads"><span class="st-failed"' in workers.text and ">2</span>" in workers.text


# -- the dashboard says what it counts (issue 12, item 13) -------------------------------------


async def _failed(live: Live, job_id: str, errors: int = 1) -> None:
    from taskyard.core.job import JobStatus

    async def done() -> bool:
        job = await live.app.aget_job(job_id)
        return job is not None and job.status is JobStatus.FAILED and len(job.errors) == errors

    await wait_until(done, timeout=20, what=f"job {job_id} to fail ({errors} error(s))")


async def _card(page, label: str) -> int:
    return int((await page.text_content(f"[data-card='{label}'] .value")).strip())


async def test_failed_cards_count_what_their_labels_say(live: Live, browser) -> None:
    """A job that failed, was retried and failed again ended failed twice in the hour, and is
    one job in the failed status now: the two cards say which is which."""
    job = await live.app.aenqueue("always.fail", {})
    await _failed(live, job.id)
    await live.app.aretry_job(job.id)
    await _failed(live, job.id, errors=2)
    page = await _login(browser, live, live.creds.admin_jwt)

    async def both_counted() -> bool:  # the worker writes its per-minute counts with its heartbeat
        await page.goto(live.url + "/")
        return await _card(page, "ended failed · 1h") == 2

    await wait_until(both_counted, timeout=20, what="the hour's failures on the overview")
    assert await _card(page, "failed now") == 1
    assert "retried or pruned" in (await page.get_attribute("[data-card='ended failed · 1h']", "title"))
    await page.goto(live.url + "/jobs?status=failed")
    assert await page.locator("tr[data-status='failed']").count() == 1


async def test_queue_depth_is_captioned_as_a_count_not_a_rate(live: Live, browser) -> None:
    await live.app.apause_queue("math")
    for n in range(3):
        await live.app.aenqueue("math.add", {"a": n, "b": 1})
    page = await _login(browser, live, live.creds.viewer_jwt)

    async def sampled() -> str:  # the sampler writes the depth to the store every 0.5 s
        await page.goto(live.url + "/")
        text = (await page.text_content("#chart-depth .summary")).strip()
        return text if text.startswith("3 ") else ""

    depth = await wait_until(sampled, timeout=20, what="the sampled depth on the overview")
    assert depth == "3 waiting at the last sample · peak 3", depth
    assert "/ min" not in depth
    assert "/ min" in await page.text_content("#chart-throughput .summary")


async def test_services_page_keeps_job_failures_apart_from_the_workers_own(live: Live, browser) -> None:
    job = await live.app.aenqueue("always.fail", {})
    await _failed(live, job.id)
    page = await _login(browser, live, live.creds.viewer_jwt)
    await page.goto(live.url + "/services")
    row = "tr[data-service='worker']"
    assert "1 not ok" in await page.text_content(f"{row} .jobs")
    assert (await page.text_content(f"{row} .failures")).strip() == "—"
    assert await page.text_content(f"{row} .status") == "running"


async def test_a_confirmation_shows_once_and_not_on_every_refresh(live: Live, browser) -> None:
    job = await live.app.aenqueue("always.fail", {})
    await _failed(live, job.id)
    await live.app.apause_queue("default")  # the retried job waits, so the page stays still
    page = await _login(browser, live, live.creds.admin_jwt)
    await page.goto(f"{live.url}/jobs/{job.id}")
    await page.click("button[data-action='retry']")
    await page.wait_for_selector("p.notice", timeout=WAIT)
    assert await page.text_content("p.notice") == "Sent back to pending."
    # The page's CSP forbids eval, so poll from here rather than with wait_for_function.
    async def address() -> str:
        return str(await page.evaluate("() => window.location.pathname + window.location.search"))

    async def address_is_clean() -> bool:
        return "done=" not in await address()

    await wait_until(address_is_clean, timeout=20, what="done= to leave the address")
    assert await address() == f"/jobs/{job.id}"

    async def refreshed() -> bool:
        return bool(await page.evaluate("() => document.body.dataset.refreshedAt || ''"))

    await wait_until(refreshed, timeout=20, what="the page to refresh itself")
    assert await page.locator("p.notice").count() == 0
    await page.reload()
    assert await page.locator("p.notice").count() == 0


async def test_attempts_after_a_manual_retry_are_marked(live: Live, browser) -> None:
    job = await live.app.aenqueue("always.fail", {})
    await _failed(live, job.id)
    page = await _login(browser, live, live.creds.admin_jwt)
    await page.goto(f"{live.url}/jobs/{job.id}")
    assert await page.locator("[data-restart]").count() == 0
    await page.click("button[data-action='retry']")
    await _failed(live, job.id, errors=2)
    await page.goto(f"{live.url}/jobs/{job.id}")
    summaries = await page.locator("details.attempt summary").all_text_contents()
    assert [s.split(" · ")[0] for s in summaries] == ["attempt 1", "attempt 1"]
    marks = page.locator("[data-restart]")
    assert await marks.count() == 1
    assert "Retried manually" in await marks.text_content()


async def test_schedules_page_says_when_a_schedule_cannot_fire(live: Live, browser) -> None:
    await live.app.schedules.aadd("adds", cron="* * * * *", task="math.add", payload={"a": 1, "b": 2})
    other = live.app.schedules.build("nightly-report", check_task=False, cron="0 3 * * *",
                                     task="reports.nightly", payload={})
    await live.app.backend.schedule_upsert(schedule=other)
    page = await _login(browser, live, live.creds.viewer_jwt)
    await page.goto(live.url + "/schedules")
    assert await page.locator("#no-scheduler").count() == 1  # nothing here runs the scheduler
    assert await page.locator("[data-unrunnable='reports.nightly']").count() == 1
    assert await page.locator("[data-unrunnable='math.add']").count() == 0

    await live.app.backend.leader_attempt_elect(name="scheduler", holder="box-1:42:abcdef", ttl=60)
    await page.goto(live.url + "/schedules")
    assert await page.locator("#no-scheduler").count() == 0
    assert await page.locator("[data-unrunnable='reports.nightly']").count() == 1
