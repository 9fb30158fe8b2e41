"""The dashboard's charts, schedules, live updates and phone layout in real headless Chromium:
chart ranges and hover readouts from the backend's statistics, a schedule that cannot fire,
a job's progress arriving without a reload, and the 390 px layout against a stored picture.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from taskyard.app import Taskyard
from taskyard.core.queue import LATENCY_BOUNDS, StatsRow
from taskyard.http.dashboard.charts import window
from taskyard.services.manager import ServiceManager
from taskyard.services.worker import Worker, WorkerConfig
from tests.e2e.conftest import Creds, make_app, need_chromium, serving
from tests.support.waiting import wait_until

#: The stored 390 px picture; `TASKYARD_UPDATE_SCREENSHOTS=1` rewrites it (review the diff).
PHONE_PNG = Path(__file__).parent / "reference" / "phone-390-schedules.png"
#: Share of pixels that may differ from the stored picture (font hinting, anti-aliasing).
PHONE_TOLERANCE = 0.03


@dataclass
class Glance:
    """A running server with a worker, and the events that move the `steps` task on: `step`
    to its second progress report, `release` to its end."""

    url: str
    app: Taskyard
    creds: Creds
    step: asyncio.Event
    release: asyncio.Event


@pytest.fixture
async def glance() -> AsyncIterator[Glance]:
    need_chromium()
    app = make_app()
    step, release = asyncio.Event(), asyncio.Event()

    @app.task("steps", queue="slow")
    async def steps(payload: dict, ctx) -> None:
        ctx.progress(10, "starting")
        await step.wait()
        ctx.progress(55, "halfway")
        await release.wait()

    manager = ServiceManager()
    manager.register("worker", Worker(app, WorkerConfig(poll_interval=0.1, concurrency=2)), name="Worker")
    async with serving(app, manager) as (url, creds):
        try:
            yield Glance(url=url, app=app, creds=creds, step=step, release=release)
        finally:
            step.set()
            release.set()


async def _login(browser, g: Glance, *, width: int = 1280, height: int = 900, dark: bool = False):
    context = await browser.new_context(viewport={"width": width, "height": height},
                                         color_scheme="dark" if dark else "light")
    page = await context.new_page()
    await page.goto(g.url + "/login")
    await page.fill("#token", g.creds.viewer_jwt["Authorization"].removeprefix("Bearer "))
    await page.click("#login")
    await page.wait_for_url(g.url + "/")
    return page


def _cells(**cells: int) -> tuple[int, ...]:
    out = [0] * (len(LATENCY_BOUNDS) + 1)
    for name, n in cells.items():
        out[int(name[1:])] = n
    return tuple(out)


async def _readout(page, chart: str, at: datetime, rng: str) -> str:
    """Hover the bin of `chart` that holds `at` (found by its label) and read the readout."""
    win = window(rng, at)
    label = win.label(win.index(at) or 0)
    hit = page.locator(f"#chart-{chart} .hits rect[data-readout^='{label}:']")
    await hit.hover()
    return (await page.text_content(f"#chart-{chart} .readout")).strip()


async def test_chart_ranges_hover_values_and_breakdown(glance: Glance, browser) -> None:
    now = glance.app.clock.now().replace(second=0, microsecond=0)
    three_ago, two_days_ago = now - timedelta(minutes=3), now - timedelta(days=2)
    await glance.app.backend.stats_record(rows=[
        StatsRow(three_ago, "math", 7, 1, task="math.add", latency=_cells(c2=9, c7=1)),
        StatsRow(three_ago, "default", 4, 2, task="always.fail"),
        StatsRow(two_days_ago, "math", 30, 0, task="math.add"),
    ])
    page = await _login(browser, glance)
    assert await page.locator("#chart-throughput .hits rect").count() == 60  # 1 h of minutes
    text = await _readout(page, "throughput", three_ago, "1h")
    assert text.startswith(f"{three_ago:%H:%M} UTC: 11 jobs completed / min"), text
    assert "math 7" in text and "default 4" in text
    assert "p50 ≤ 100 ms" in await _readout(page, "latency", three_ago, "1h")
    assert "p95 ≤ 5 s (10 started)" in await _readout(page, "latency", three_ago, "1h")
    assert "jobs completed / min" in await page.text_content("#chart-throughput .readout")
    ticks = await page.locator("#chart-throughput .ytick").all_text_contents()
    assert ticks == ["0", "10", "20"], ticks  # a round scale above the peak of 11

    await page.click("[data-range='15m']")
    await page.wait_for_url(glance.url + "/?range=15m&by=queue")
    assert await page.locator("#chart-throughput .hits rect").count() == 15
    assert "11 jobs completed" in await _readout(page, "throughput", three_ago, "15m")

    await page.click("[data-range='7d']")
    await page.wait_for_url(glance.url + "/?range=7d&by=queue")
    assert await page.locator("#chart-throughput .hits rect").count() == 84  # two-hour bins
    summary = await page.text_content("#chart-throughput .summary")
    assert summary.startswith("41 completed in 7 d"), summary  # the row two days old counts now
    assert "jobs completed / 2 h" in await _readout(page, "throughput", three_ago, "7d")

    await page.click("[data-by='task']")
    await page.wait_for_url(glance.url + "/?range=7d&by=task")
    legend = await page.locator("#chart-throughput .legend li").all_text_contents()
    assert legend == ["math.add", "always.fail"]
    assert "always.fail 2" in await _readout(page, "failures", three_ago, "7d")

    # Keyboard: a chart takes focus and the arrow keys walk its bins.
    await page.focus("#chart-failures svg")
    await page.keyboard.press("End")
    last = (await page.text_content("#chart-failures .readout")).strip()
    await page.keyboard.press("ArrowLeft")
    assert (await page.text_content("#chart-failures .readout")).strip() != last

    response = await page.goto(glance.url + "/?range=1y")
    assert response.status == 400
    assert "range must be one of 15m, 1h, 24h, 7d" in await page.text_content("main")


async def test_a_schedule_that_cannot_fire_says_why(glance: Glance, browser) -> None:
    await glance.app.schedules.aadd("adds", cron="* * * * *", task="math.add", payload={"a": 1, "b": 2})
    page = await _login(browser, glance)
    await page.goto(glance.url + "/schedules")
    row = page.locator("tr[data-schedule='adds']")
    assert await row.get_attribute("data-cannot-fire") is not None
    assert await row.locator(".state .status").text_content() == "cannot fire"
    assert "no scheduler leads" in await row.locator("[data-reason]").first.text_content()

    await glance.app.backend.leader_attempt_elect(name="scheduler", holder="box-1:42:abcdef", ttl=60)
    await page.reload()
    assert await row.get_attribute("data-cannot-fire") is None
    assert await row.locator(".state .status").text_content() == "active"
    assert "box-1" in await page.text_content("#scheduler-lead")


async def test_progress_arrives_live_without_a_reload(glance: Glance, browser) -> None:
    job = await glance.app.aenqueue("steps", {})
    page = await _login(browser, glance)
    row = page.locator(f"[data-job-id='{job.id}']")

    async def shown(text: str) -> bool:
        if not await row.count():
            await page.goto(glance.url + "/workers")  # until the worker has claimed it
            return False
        return text in (await row.locator("[data-live='progress-text']").text_content() or "")

    await wait_until(lambda: shown("10%"), timeout=20, what="the job's first progress on the page")

    async def streaming() -> bool:  # the page's CSP forbids eval: poll from here
        return await page.evaluate("() => document.body.dataset.live") == "on"

    await wait_until(streaming, timeout=20, what="the live stream to open")
    await page.evaluate("() => { window.__kept = 'same page'; }")
    glance.step.set()  # the handler reports 55 %
    await wait_until(lambda: shown("55% — halfway"), timeout=20, what="the new progress to arrive live")
    assert await row.locator("progress").get_attribute("value") is not None
    assert await page.evaluate("() => document.querySelector('[data-job-id] progress').value") == 55
    assert await page.evaluate("() => window.__kept") == "same page"  # never reloaded
    glance.release.set()

    bad = await page.request.get(glance.url + "/live?jobs=" + job.id + ",not-an-id!")
    assert bad.status == 400 and "not-an-id!" in await bad.text()
    stranger = await (await browser.new_context()).request.get(glance.url + "/live")
    assert stranger.status == 401


async def _similarity(page, png: bytes, stored: bytes) -> float:
    """The share of pixels that differ, counted in the browser (a canvas per picture)."""
    return float(await page.evaluate(
        """async ([a, b]) => {
            const load = (src) => new Promise((ok, bad) => { const i = new Image(); i.onload = () => ok(i); i.onerror = bad; i.src = src; });
            const [x, y] = await Promise.all([load(a), load(b)]);
            if (x.width !== y.width || x.height !== y.height) return 1;
            const pixels = (img) => { const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
                const g = c.getContext('2d'); g.drawImage(img, 0, 0); return g.getImageData(0, 0, img.width, img.height).data; };
            const p = pixels(x), q = pixels(y);
            let differ = 0;
            for (let i = 0; i < p.length; i += 4) {
                if (Math.abs(p[i] - q[i]) + Math.abs(p[i + 1] - q[i + 1]) + Math.abs(p[i + 2] - q[i + 2]) > 48) differ++;
            }
            return differ / (p.length / 4);
        }""",
        ["data:image/png;base64," + base64.b64encode(png).decode(), "data:image/png;base64," + base64.b64encode(stored).decode()],
    ))


async def test_the_390_px_layout_matches_the_stored_picture(glance: Glance, browser) -> None:
    await glance.app.schedules.aadd("nightly-sum", cron="0 3 * * *", task="math.add", payload={"a": 1, "b": 2})
    page = await _login(browser, glance, width=390, height=844)
    await page.goto(glance.url + "/schedules")
    # Nothing overflows sideways: wide tables scroll inside their own box.
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert await page.evaluate("() => getComputedStyle(document.querySelector('table.grid')).overflowX") == "auto"
    # Times move between runs: cover them, and compare the rest.
    moving = [page.locator(".fires"), page.locator("td[title]"), page.locator("#scheduler-lead")]
    await page.evaluate("() => document.getAnimations().forEach(a => a.finish())")
    png = await page.screenshot(full_page=False, mask=moving, animations="disabled")
    if os.environ.get("TASKYARD_UPDATE_SCREENSHOTS") or not PHONE_PNG.exists():
        if os.environ.get("CI") and not PHONE_PNG.exists():
            pytest.fail(f"{PHONE_PNG.name} is not stored; run with TASKYARD_UPDATE_SCREENSHOTS=1 and commit it")
        PHONE_PNG.parent.mkdir(exist_ok=True)
        PHONE_PNG.write_bytes(png)
    blank = await (await browser.new_context()).new_page()  # no CSP there: images from data URLs
    differ = await _similarity(blank, png, PHONE_PNG.read_bytes())
    assert differ <= PHONE_TOLERANCE, f"{differ:.1%} of the 390 px picture differs from {PHONE_PNG.name}"


async def test_services_show_their_status_history(glance: Glance, browser) -> None:
    page = await _login(browser, glance)
    await page.goto(glance.url + "/services")
    history = await page.get_attribute("tr[data-service='worker'] [data-history]", "data-history")
    assert history == "STARTING RUNNING", history
    assert "running" in await page.text_content("tr[data-service='worker'] .history-cell")
