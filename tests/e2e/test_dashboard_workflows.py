"""The dashboard's workflow pages: the list, a workflow's graph and steps, a collapsed map's
jobs, the job page of a step, Cancel and Retry (in-process over HTTP), and in headless
Chromium a fan-out/fan-in workflow whose nodes change colour live and that the Cancel button
cancels. Workflows are stored straight through `backend.workflow_enqueue`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from taskyard.app import Taskyard
from taskyard.backends.protocol import Backend
from taskyard.core.job import AttemptError, Job, JobStatus
from taskyard.core.settle import Settle
from taskyard.core.workflow import Policy, Workflow, WorkflowStatus
from taskyard.services.manager import ServiceManager
from tests.e2e.conftest import Creds, Env, make_app, need_chromium, serving
from tests.e2e.test_dashboard import SHOTS, WAIT
from tests.support.waiting import wait_until
from tests.support.workflows import Graph


async def _sign_in(env: Env, key: str = "admin_key", next_url: str = "/") -> None:
    form = await env.client.get("/login")
    csrf = dict(re.findall(r'name="(csrf)" value="([^"]*)"', form.text))["csrf"]
    token = getattr(env.creds, key)["Authorization"].removeprefix("Bearer ")
    signed = await env.client.post("/login", data={"csrf": csrf, "token": token, "next": next_url})
    assert signed.status_code == 303


def fan(name: str = "onboard", *, fetches: int = 3, thumbs: int = 0) -> Graph:
    """plan → fetch[i] (and thumb[i]) → report; report continues past a failed fetch."""
    g = Graph(name)
    g.add("plan")
    g.map("fetch", fetches, after=["plan"])
    g.map("thumb", thumbs, after=["plan"])
    g.add("report", after={**{f"fetch[{i}]": Policy.CONTINUE for i in range(fetches)},
                           **{f"thumb[{i}]": Policy.FAIL for i in range(thumbs)}})
    return g


async def hold(backend: Backend, job_id: str, *, worker: str = "w-test") -> Job:
    """Claim every due job of queue `wf`, keep `job_id` running and release the rest."""
    claimed = await backend.job_claim(queues=["wf"], limit=2000, worker_id=worker, lease=60)
    mine = next(j for j in claimed if j.id == job_id)
    rest = [Settle.released(j.id, j.lease_token or "") for j in claimed if j.id != job_id]
    if rest:
        await backend.jobs_settle(outcomes=rest)
    return mine


async def run(backend: Backend, job_id: str, *, ok: bool = True, held: Job | None = None) -> Job:
    """Settle `job_id` (claimed now unless `held`) as completed or failed."""
    mine = held or await hold(backend, job_id)
    error = AttemptError.of_text(attempt=1, type="RuntimeError", message="boom", traceback=None, at=mine.started_at)
    outcome = (Settle.completed(job_id, mine.lease_token or "", {"ok": True}) if ok
               else Settle.failed(job_id, mine.lease_token or "", error, None))
    await backend.jobs_settle(outcomes=[outcome])
    got = await backend.job_get(job_id=job_id)
    assert got is not None
    return got


async def stored(env_app: Taskyard, g: Graph) -> Workflow:
    return await (await env_app.backend_for_loop()).workflow_enqueue(workflow=g.draft())


# -- in-process, over HTTP ------------------------------------------------------------------


async def test_the_list_shows_workflows_newest_first_with_status_and_step_counts(env: Env) -> None:
    older = await stored(env.app, fan("older"))
    newer = await stored(env.app, fan("newer", fetches=2))
    await env.app.backend.workflow_cancel(workflow_id=older.id)
    await _sign_in(env)
    page = await env.client.get("/workflows")
    assert page.status_code == 200
    rows = re.findall(r'<tr data-workflow="([^"]+)" data-status="([^"]+)">(.*?)</tr>', page.text, re.S)
    assert [(i, s) for i, s, _ in rows] == [(newer.id, "running"), (older.id, "cancelled")]
    assert 'data-count="pending">1 pending' in rows[0][2] and 'data-count="blocked">3 blocked' in rows[0][2]
    assert 'data-count="cancelled">5 cancelled' in rows[1][2]
    assert '<a href="/workflows" class="active">Workflows</a>' in page.text


async def test_the_list_pages_on(env: Env) -> None:
    for i in range(26):
        g = Graph(f"w{i:02d}")
        g.add("only")
        await stored(env.app, g)
    await _sign_in(env)
    first = await env.client.get("/workflows")
    assert first.text.count("<tr data-workflow=") == 25 and "w25" in first.text and ">w00<" not in first.text
    older = re.search(r'href="(/workflows\?cursor=[^"]+)"', first.text)
    assert older
    second = await env.client.get(older.group(1).replace("&amp;", "&"))
    assert second.text.count("<tr data-workflow=") == 1 and ">w00<" in second.text


async def test_a_workflow_page_draws_each_step_and_collapses_a_big_map(env: Env) -> None:
    wf = await stored(env.app, fan(fetches=2, thumbs=40))
    g_ids = {j.step: j.id for j in wf.steps}
    await run(env.app.backend, g_ids["plan"])
    await run(env.app.backend, g_ids["thumb[0]"], ok=False)
    await _sign_in(env)
    page = await env.client.get(f"/workflows/{wf.id}")
    assert page.status_code == 200
    assert '<h1>Workflow onboard <span class="status st-running">running</span></h1>' in page.text
    nodes = re.findall(r'<a href="([^"]+)" class="node( map)?" data-node="[^"]+" data-status="([a-z]+)"', page.text)
    assert [(h, m, s) for h, m, s in nodes] == [
        (f"/jobs/{g_ids['plan']}", "", "completed"),
        (f"/jobs/{g_ids['fetch[0]']}", "", "pending"),
        (f"/jobs/{g_ids['fetch[1]']}", "", "pending"),
        (f"/workflows/{wf.id}/steps/thumb", " map", "failed"),
        (f"/jobs/{g_ids['report']}", "", "cancelled"),  # a thumb failed under `fail`
    ]
    assert "39 pending, 1 failed" in page.text
    steps = re.findall(r'<tr data-step="([^"]+)" data-status="([a-z]+)"', page.text)
    assert steps == [("plan", "completed"), ("fetch[0]", "pending"), ("fetch[1]", "pending"),
                     ("thumb \u00d740", "failed"), ("report", "cancelled")]
    assert "RuntimeError: boom" in page.text
    assert 'data-confirm="Cancel workflow onboard? 41 unfinished step(s) will be cancelled."' in page.text
    assert 'data-confirm="Retry workflow onboard? Its 2 failed or cancelled step(s) run again."' in page.text


async def test_a_collapsed_map_lists_its_jobs_by_status_a_page_at_a_time(env: Env) -> None:
    wf = await stored(env.app, fan(fetches=1, thumbs=60))
    ids = {j.step: j.id for j in wf.steps}
    await run(env.app.backend, ids["plan"])
    await run(env.app.backend, ids["thumb[7]"], ok=False)
    await _sign_in(env)
    page = await env.client.get(f"/workflows/{wf.id}/steps/thumb")
    assert page.status_code == 200
    assert re.findall(r'data-tab="([a-z]+)"[^>]*>\1 <span class="count">(\d+)', page.text) == [
        ("all", "60"), ("pending", "59"), ("failed", "1")]
    assert page.text.count("<tr data-step=") == 50 and "1\u201350 of 60" in page.text
    second = await env.client.get(f"/workflows/{wf.id}/steps/thumb?page=2")
    assert second.text.count("<tr data-step=") == 10 and 'data-step="thumb[59]"' in second.text
    failed = await env.client.get(f"/workflows/{wf.id}/steps/thumb?status=failed")
    assert re.findall(r'<tr data-step="([^"]+)"', failed.text) == ["thumb[7]"]
    assert (await env.client.get(f"/workflows/{wf.id}/steps/nope")).status_code == 404
    assert (await env.client.get(f"/workflows/{'0' * 26}")).status_code == 404
    assert (await env.client.get("/workflows/not-an-id")).status_code == 404


async def test_a_step_job_links_to_its_workflow_and_blocked_shows_everywhere(env: Env) -> None:
    wf = await stored(env.app, fan(fetches=14))
    report = next(j for j in wf.steps if j.step == "report")
    fetch = next(j for j in wf.steps if j.step == "fetch[3]")
    await _sign_in(env)
    page = (await env.client.get(f"/jobs/{report.id}")).text
    assert f'<a href="/workflows/{wf.id}" class="mono">{wf.id}</a>' in page
    assert re.search(r'<dd id="step">report <span class="muted">waits for its parent steps', page)
    assert '<span class="status st-blocked">blocked</span>' in page
    assert 'data-action="cancel"' in page  # a blocked step can be cancelled
    mapped = (await env.client.get(f"/jobs/{fetch.id}")).text
    assert f'<a href="/workflows/{wf.id}/steps/fetch">fetch</a>[3]' in mapped
    jobs = (await env.client.get("/jobs")).text
    assert re.search(r'data-tab="blocked"[^>]*>blocked <span class="count">15<', jobs)
    queues = (await env.client.get("/queues")).text
    assert "<th title=\"workflow steps waiting for their parent steps\">blocked</th>" in queues
    assert 'status=blocked" data-tab="blocked">blocked 15</a>' in queues
    css = (await env.client.get("/static/dashboard.css")).text
    assert ".st-blocked {" in css and '.dag .node[data-status=blocked]' in css


async def test_cancel_and_retry_act_through_a_checked_form_and_are_audited(env: Env, caplog: Any) -> None:
    caplog.set_level("INFO", logger="taskyard.http.audit")
    wf = await stored(env.app, fan())
    ids = {j.step: j.id for j in wf.steps}
    await _sign_in(env)
    page = (await env.client.get(f"/workflows/{wf.id}")).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    headers = {"Origin": "http://127.0.0.1:5050"}
    stale = await env.client.post(f"/workflows/{wf.id}/cancel", data={"csrf": "nope"}, headers=headers)
    assert stale.status_code == 403
    done = await env.client.post(f"/workflows/{wf.id}/cancel", headers=headers,
                                 data={"csrf": csrf.group(1), "next": f"/workflows/{wf.id}"})
    assert done.status_code == 303 and done.headers["location"] == f"/workflows/{wf.id}?done=wf-cancel"
    after = await env.app.backend.workflow_get(workflow_id=wf.id)
    assert after is not None and after.status is WorkflowStatus.CANCELLED
    shown = (await env.client.get(done.headers["location"])).text
    assert "Workflow cancelled" in shown and 'data-action="cancel"' not in shown
    assert 'data-action="retry"' in shown
    await env.client.post(f"/workflows/{wf.id}/retry", headers=headers,
                          data={"csrf": csrf.group(1), "next": f"/workflows/{wf.id}"})
    after = await env.app.backend.workflow_get(workflow_id=wf.id)
    assert after is not None and after.status is WorkflowStatus.RUNNING
    assert {j.step: j.status for j in after.steps}["plan"] is JobStatus.PENDING
    audited = [r.getMessage() for r in caplog.records if r.name == "taskyard.http.audit"]
    assert any(f"workflows.cancel on {wf.id}" in m and "via=dashboard" in m for m in audited)
    assert any(f"workflows.retry on {wf.id}" in m for m in audited)
    assert ids["plan"] in page


async def test_a_viewer_sees_no_workflow_buttons_and_cannot_cancel(env: Env) -> None:
    wf = await stored(env.app, fan())
    await _sign_in(env, "viewer_key")
    page = (await env.client.get(f"/workflows/{wf.id}")).text
    assert 'data-action="cancel"' not in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    refused = await env.client.post(f"/workflows/{wf.id}/cancel", data={"csrf": csrf.group(1)},
                                    headers={"Origin": "http://127.0.0.1:5050"})
    assert refused.status_code == 403
    after = await env.app.backend.workflow_get(workflow_id=wf.id)
    assert after is not None and after.status is WorkflowStatus.RUNNING


# -- in Chromium ----------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    app: Taskyard
    creds: Creds


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """The dashboard with no worker: the test moves steps on through the backend itself."""
    need_chromium()
    app = make_app()
    async with serving(app, ServiceManager()) as (url, creds):
        yield Served(url, app, creds)


async def _open(browser: Any, served: Served, path: str, *, dark: bool = False, width: int = 1280) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": 900},
                                        color_scheme="dark" if dark else "light")
    page = await context.new_page()
    await page.goto(served.url + "/login?next=" + path)
    await page.fill("#token", served.creds.admin_jwt["Authorization"].removeprefix("Bearer "))
    await page.click("#login")
    await page.wait_for_url(served.url + path)
    return page


async def _stroke(page: Any, step_id: str) -> str:
    return str(await page.evaluate(
        "(id) => getComputedStyle(document.querySelector(`[data-job-id='${id}'] .box`)).stroke", step_id))


async def _badge(page: Any, status: str) -> str:
    """The colour of a status badge of `status`, as the page computes it."""
    return str(await page.evaluate("""(s) => { const b = document.createElement('span');
        b.className = 'status st-' + s; document.body.appendChild(b);
        const c = getComputedStyle(b).color; b.remove(); return c; }""", status))


async def test_a_fan_out_fan_in_workflow_changes_live_and_is_cancelled_with_the_button(served: Served, browser: Any) -> None:
    backend = await served.app.backend_for_loop()
    wf = await backend.workflow_enqueue(workflow=fan(fetches=3, thumbs=30).draft())
    ids = {j.step: j.id for j in wf.steps}
    await run(backend, ids["plan"])
    await run(backend, ids["fetch[0]"])
    await run(backend, ids["fetch[1]"], ok=False)
    for i in range(12):
        await run(backend, ids[f"thumb[{i}]"])
    running = await hold(backend, ids["fetch[2]"])
    page = await _open(browser, served, f"/workflows/{wf.id}")

    async def state(step: str) -> str:
        return str(await page.get_attribute(f"svg.dag [data-job-id='{ids[step]}']", "data-status"))

    assert [await state(s) for s in ("plan", "fetch[0]", "fetch[1]", "fetch[2]", "report")] == [
        "completed", "completed", "failed", "running", "blocked"]
    # Each node wears its status badge's colour.
    assert await _stroke(page, ids["plan"]) == await _badge(page, "completed")
    assert await _stroke(page, ids["fetch[1]"]) == await _badge(page, "failed")
    assert await _stroke(page, ids["fetch[2]"]) == await _badge(page, "running")
    assert await _stroke(page, ids["fetch[2]"]) == await _badge(page, "completed")  # the badges share it...
    dashes = "(id) => getComputedStyle(document.querySelector(`[data-job-id='${id}'] .box`)).strokeDasharray"
    assert await page.evaluate(dashes, ids["fetch[2]"]) != await page.evaluate(dashes, ids["plan"])  # ...not the border
    assert await _stroke(page, ids["report"]) == await _badge(page, "blocked")
    assert len({await _badge(page, s) for s in ("blocked", "pending", "failed", "completed", "cancelled")}) == 5
    thumbs = page.locator("svg.dag a.node.map")
    assert await thumbs.count() == 1
    assert "12 completed" in await thumbs.text_content()
    dashed = page.locator("svg.dag path.edge.lenient")
    assert await dashed.count() == 3
    assert "continue: report runs even if fetch" in await dashed.first.locator("title").text_content()
    SHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SHOTS / "workflow.png"), full_page=True)
    dark = await _open(browser, served, f"/workflows/{wf.id}", dark=True)
    assert await _stroke(dark, ids["plan"]) != await _stroke(page, ids["plan"])  # its own palette
    await dark.screenshot(path=str(SHOTS / "workflow-dark.png"), full_page=True)
    await dark.context.close()
    phone = await _open(browser, served, f"/workflows/{wf.id}", width=390)
    # The graph scrolls inside its own box; nothing scrolls the page sideways.
    assert await phone.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert await phone.evaluate("() => document.getElementById('dag-wrap').scrollWidth") > 390
    await phone.context.close()

    # The last fetch completes through the backend: its node turns completed with no reload.
    await page.evaluate("() => { document.body.dataset.sameDocument = 'yes'; }")
    await run(backend, ids["fetch[2]"], held=running)

    async def fetched() -> bool:
        return await state("fetch[2]") == "completed"

    await wait_until(fetched, timeout=20, what="the fetch[2] node to turn completed")
    assert await page.evaluate(dashes, ids["fetch[2]"]) == await page.evaluate(dashes, ids["plan"])
    assert await page.evaluate("() => document.body.dataset.sameDocument") == "yes"

    # Cancel asks first, then cancels every unfinished step; the page says so.
    dialogs: list[str] = []

    async def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await page.click("#workflow-actions button[data-action='cancel']")
    await page.wait_for_selector("p.notice", timeout=WAIT)
    assert dialogs == ["Cancel workflow onboard? 19 unfinished step(s) will be cancelled."]
    assert await page.text_content("h1 .status") == "cancelled"
    assert await state("report") == "cancelled"
    after = await backend.workflow_get(workflow_id=wf.id)
    assert after is not None and after.status is WorkflowStatus.CANCELLED
