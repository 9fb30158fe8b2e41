"""The jobs views in real headless Chromium: search with a shareable address, status tabs
with counts, and a bulk retry of 1,000 jobs selected by filter (with its confirmation)."""

from __future__ import annotations

from datetime import UTC, datetime

from taskyard.core.ids import new_id
from taskyard.core.job import AttemptError, JobDraft
from taskyard.core.settle import Settle
from tests.e2e import test_dashboard as dashboard
from tests.e2e.test_dashboard import SHOTS, WAIT, Live, _login, _shot

# The live server of the dashboard's own tests (the browser fixture is the e2e conftest's).
live = dashboard.live

#: A task no worker knows: its jobs stay where the test puts them.
IDLE = "imports.row"


async def _failed_jobs(live: Live, n: int, queue: str = "imports") -> list[str]:
    """`n` failed jobs of `queue`, failed through claim and settle as a worker would."""
    backend = live.app.backend
    drafts = [JobDraft(id=new_id(), task=IDLE, queue=queue, payload={"row": i}) for i in range(n)]
    await backend.job_enqueue_many(drafts=drafts)
    claimed = await backend.job_claim(queues=[queue], limit=n, worker_id="test", lease=300, tasks=[IDLE])
    assert len(claimed) == n
    now = datetime.now(UTC)
    error = AttemptError.of_text(attempt=1, type="ImportError", message="bad row", traceback=None, at=now)
    settled = await backend.jobs_settle(
        outcomes=[Settle.failed(j.id, j.lease_token or "", error, None) for j in claimed])
    assert all(s.owned for s in settled)
    return [d.id for d in drafts]


async def test_search_box_and_shareable_address(live: Live, browser) -> None:
    backend = live.app.backend
    wanted = JobDraft(id=new_id(), task=IDLE, queue="imports", payload={"customer": "acme-4242"})
    other = JobDraft(id=new_id(), task=IDLE, queue="imports", payload={"customer": "globex-17"})
    await backend.job_enqueue_many(drafts=[wanted, other])
    page = await _login(browser, live, live.creds.admin_jwt)
    await page.goto(live.url + "/jobs")
    await page.fill("input[name=q]", "ACME-4242")
    await page.press("input[name=q]", "Enter")
    await page.wait_for_url("**/jobs?*q=ACME-4242*", timeout=WAIT)
    rows = page.locator("#jobs tbody tr[data-job]")
    assert await rows.count() == 1
    assert await rows.first.get_attribute("data-job") == wanted.id
    await _shot(page, "jobs-search")

    # The address alone gives the same view (search and filters in the query string).
    shared = page.url
    fresh = await (await browser.new_context()).new_page()
    await fresh.goto(shared)
    await fresh.fill("#token", live.creds.admin_jwt["Authorization"].removeprefix("Bearer "))
    await fresh.click("#login")
    await fresh.wait_for_url(shared, timeout=WAIT)
    assert await fresh.locator("#jobs tbody tr[data-job]").count() == 1
    assert await fresh.input_value("input[name=q]") == "ACME-4242"

    # Too short a text says so and shows everything rather than failing.
    await page.goto(live.url + "/jobs?q=ac&queue=imports")
    assert "at least 3 characters" in await page.text_content("#q-help")
    assert await page.locator("#jobs tbody tr[data-job]").count() == 2


async def test_bulk_retry_of_1000_selected_by_filter(live: Live, browser) -> None:
    ids = await _failed_jobs(live, 1000)
    page = await _login(browser, live, live.creds.admin_jwt)
    await page.goto(live.url + "/jobs?queue=imports")

    # Status tabs count the queue's jobs; a tab is a shareable filter.
    failed_tab = page.locator(".status-tabs a[data-tab=failed]")
    assert (await failed_tab.locator(".count").text_content()).strip() == "1000"
    await failed_tab.click()
    await page.wait_for_url("**/jobs?queue=imports&status=failed", timeout=WAIT)
    assert await page.get_attribute(".status-tabs a[data-tab=failed]", "aria-current") == "page"
    assert await page.locator("#jobs tbody tr[data-job]").count() == 50  # one page shown

    dialogs: list[str] = []

    async def accept(dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await page.check("#select-matching")
    assert (await page.text_content("#selected-count")) == "every matching job"
    SHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SHOTS / "jobs-bulk-selected.png"))  # the top: the controls
    await page.click("#bulk button[value=retry]")
    await page.wait_for_selector("#bulk-report", timeout=WAIT * 3)
    assert dialogs == ["retry 1000 jobs matching this view?"]
    assert (await page.text_content("#bulk-report")).strip() == "retry: 1000 done, 0 skipped."
    counts = (await live.app.acounts())["imports"]
    assert (counts["failed"], counts["pending"]) == (0, 1000)
    assert {j.status.value for j in [await live.app.aget_job(i) for i in ids[:5]]} == {"pending"}
    await page.goto(live.url + "/jobs?queue=imports")
    assert (await page.text_content(".status-tabs a[data-tab=pending] .count")).strip() == "1000"


async def test_bulk_cancel_and_delete_of_checked_jobs(live: Live, browser) -> None:
    backend = live.app.backend
    drafts = [JobDraft(id=new_id(), task=IDLE, queue="imports", payload={"n": i}) for i in range(3)]
    await backend.job_enqueue_many(drafts=drafts)
    page = await _login(browser, live, live.creds.admin_key)
    await page.goto(live.url + "/jobs?queue=imports")
    dialogs: list[str] = []

    async def accept(dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    for d in drafts[:2]:
        await page.check(f"input[name=ids][value='{d.id}']")
    assert await page.text_content("#selected-count") == "2 selected"
    await page.click("#bulk button[value=cancel]")
    await page.wait_for_selector("#bulk-report", timeout=WAIT)
    assert dialogs[-1] == "cancel 2 selected jobs?"
    assert "cancel: 2 done" in await page.text_content("#bulk-report")
    statuses = [(await backend.job_get(job_id=d.id)).status.value for d in drafts]
    assert statuses == ["cancelled", "cancelled", "pending"]

    # Delete takes finished jobs only: the pending one is skipped and stays.
    await page.check("#select-page")
    await page.click("#bulk button[value=delete]")
    await page.wait_for_url("**bulk=delete**", timeout=WAIT)
    assert "delete: 2 done, 1 skipped" in await page.text_content("#bulk-report")
    assert [await backend.job_get(job_id=d.id) is None for d in drafts] == [True, True, False]


async def test_queue_drain_and_clean(live: Live, browser) -> None:
    backend = live.app.backend
    await _failed_jobs(live, 3, queue="tidy")
    waiting = [JobDraft(id=new_id(), task=IDLE, queue="tidy", payload={"n": i}) for i in range(4)]
    await backend.job_enqueue_many(drafts=waiting)
    page = await _login(browser, live, live.creds.admin_jwt)
    await page.goto(live.url + "/queues")
    row = "tr[data-queue='tidy']"
    assert await page.get_attribute(f"{row} a[data-tab=failed]", "href") == "/jobs?queue=tidy&status=failed"
    await page.click(f"{row} button[data-action='drain']")
    await page.wait_for_selector("p.notice", timeout=WAIT)
    assert "Drained" in await page.text_content("p.notice")
    counts = (await live.app.acounts())["tidy"]
    assert (counts["pending"], counts["cancelled"], counts["failed"]) == (0, 4, 3)

    # Clean finished jobs older than 0 hours: every finished job of the queue goes.
    await page.fill(f"{row} input[name=hours]", "0")
    await page.click(f"{row} button[data-action='clean']")
    await page.wait_for_selector("p.notice", timeout=WAIT)
    assert "Cleaned" in await page.text_content("p.notice")
    assert sum((await live.app.acounts()).get("tidy", {}).values()) == 0


async def test_bulk_and_queue_forms_need_admin_and_csrf(live: Live, browser) -> None:
    failed = await _failed_jobs(live, 2)
    admin = await _login(browser, live, live.creds.admin_key)
    await admin.goto(live.url + "/jobs?queue=imports")
    csrf = await admin.get_attribute("#bulk input[name='csrf']", "value")
    posts = [
        ("/jobs/bulk", {"csrf": csrf, "action": "delete", "scope": "filter", "queue": "imports"}),
        ("/queues/imports/clean", {"csrf": csrf, "hours": "0"}),
        ("/queues/imports/drain", {"csrf": csrf}),
    ]
    for path, form in posts:
        cross = await admin.request.post(live.url + path, form=form, headers={"Origin": "https://evil.example"})
        assert cross.status == 403, path
        stale = await admin.request.post(live.url + path, form={**form, "csrf": "x"}, headers={"Origin": live.url})
        assert stale.status == 403, path
    viewer = await _login(browser, live, live.creds.viewer_key)
    await viewer.goto(live.url + "/jobs?queue=imports")
    assert await viewer.locator("#bulk, input[name=ids]").count() == 0
    refused = await viewer.request.post(live.url + "/jobs/bulk", form={"csrf": "x", "action": "delete", "ids": failed[0]},
                                        headers={"Origin": live.url})
    assert refused.status == 403
    assert all([await live.app.aget_job(i) is not None for i in failed])
