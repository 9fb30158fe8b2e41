"""The management API over real HTTP semantics (in-process ASGI): every route, both roles."""

from __future__ import annotations

import re

import pytest

from taskyard.core.cluster import WorkerInfo
from taskyard.services.periodic import PeriodicService, PeriodicServiceConfig
from taskyard.testing import drain
from tests.e2e.conftest import Env
from tests.support.waiting import wait_until as until

JOB = "01M831ZZHYQ2TZ80B4QPZGTAF6"  # a well-formed id no job has

#: (method, path, json body) for every route; mutating ones need admin.
ROUTES = [
    ("GET", "/api/v1/jobs", None),
    ("POST", "/api/v1/jobs", {"task": "math.add", "payload": {"a": 1, "b": 2}}),
    ("GET", f"/api/v1/jobs/{JOB}", None),
    ("POST", f"/api/v1/jobs/{JOB}/cancel", None),
    ("POST", f"/api/v1/jobs/{JOB}/retry", None),
    ("POST", "/api/v1/jobs/bulk", {"action": "retry", "ids": [JOB]}),
    ("GET", "/api/v1/workflows", None),
    ("GET", f"/api/v1/workflows/{JOB}", None),
    ("POST", f"/api/v1/workflows/{JOB}/cancel", None),
    ("POST", f"/api/v1/workflows/{JOB}/retry", None),
    ("GET", "/api/v1/queues", None),
    ("GET", "/api/v1/queues/math", None),
    ("PATCH", "/api/v1/queues/math", {"concurrency": 2}),
    ("POST", "/api/v1/queues/math/pause", None),
    ("POST", "/api/v1/queues/math/resume", None),
    ("POST", "/api/v1/queues/math/retry-failed", None),
    ("GET", "/api/v1/schedules", None),
    ("POST", "/api/v1/schedules", {"name": "s1", "task": "math.add", "every": 60, "payload": {"a": 1, "b": 1}}),
    ("GET", "/api/v1/schedules/s1", None),
    ("PATCH", "/api/v1/schedules/s1", {"every": 30}),
    ("DELETE", "/api/v1/schedules/s1", None),
    ("POST", "/api/v1/schedules/s1/pause", None),
    ("POST", "/api/v1/schedules/s1/resume", None),
    ("POST", "/api/v1/schedules/s1/trigger", None),
    ("POST", "/api/v1/schedules/sets/premium/apply", {"owner": "sub:1"}),
    ("DELETE", "/api/v1/schedules/owners/sub:1", None),
    ("GET", "/api/v1/services", None),
    ("GET", "/api/v1/services/tick", None),
    *[("POST", f"/api/v1/services/tick/{a}", None) for a in ("start", "stop", "restart", "pause", "resume", "run")],
    ("POST", "/api/v1/services/start-all", None),
    ("GET", "/api/v1/leaders", None),
    ("GET", "/api/v1/workers", None),
    ("GET", "/api/v1/tasks", None),
]
MUTATING = [r for r in ROUTES if r[0] != "GET"]


class Tick(PeriodicService):
    """A periodic service that counts its runs."""

    default_id = "tick"

    def __init__(self) -> None:
        super().__init__(config=PeriodicServiceConfig(interval=3600))
        self.count = 0

    async def execute(self) -> None:
        self.count += 1


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    return body["error"]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_every_route_needs_a_token(env: Env, method: str, path: str, body: object) -> None:
    response = await env.client.request(method, path, json=body)
    _error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    bad = await env.client.request(method, path, json=body, headers={"Authorization": "Bearer nope"})
    _error(bad, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path", "body"), MUTATING, ids=[f"{m} {p}" for m, p, _ in MUTATING])
async def test_viewers_cannot_act(env: Env, method: str, path: str, body: object) -> None:
    for headers in (env.creds.viewer_jwt, env.creds.viewer_key):
        response = await env.client.request(method, path, json=body, headers=headers)
        _error(response, 403, "forbidden")
    assert (await env.app.acounts()).get("math", {}).get("pending", 0) == 0  # nothing enqueued


async def test_viewer_reads_everything(env: Env) -> None:
    for method, path, _ in ROUTES:
        if method != "GET" or "{" in path or path.endswith(("s1", "tick", JOB)):
            continue
        response = await env.client.get(path, headers=env.creds.viewer_jwt)
        assert response.status_code == 200, (path, response.text)


async def test_jobs_enqueue_get_list_cancel_retry(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    created = await c.post("/api/v1/jobs", headers=admin, json={"task": "math.add", "payload": {"a": 2, "b": 3}})
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "pending" and job["queue"] == "math" and "lease_token" not in job
    assert (job["rescues"], job["max_rescues"]) == (0, 3)

    got = await c.get(f"/api/v1/jobs/{job['id']}", headers=env.creds.viewer_key)
    assert got.status_code == 200 and got.json()["payload"] == {"a": 2, "b": 3}

    later = await c.post("/api/v1/jobs", headers=admin, json={
        "task": "math.add", "payload": {"a": 1, "b": 1}, "delay": 3600, "priority": 5})
    assert later.status_code == 201 and later.json()["status"] == "scheduled"
    cancelled = await c.post(f"/api/v1/jobs/{later.json()['id']}/cancel", headers=admin)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    retried = await c.post(f"/api/v1/jobs/{later.json()['id']}/retry", headers=admin)
    assert retried.status_code == 200 and retried.json()["status"] == "pending"

    # A unique key returns the active job instead of a second one.
    first = await c.post("/api/v1/jobs", headers=admin, json={"task": "math.add", "payload": {"a": 0, "b": 0}, "unique_key": "u1"})
    again = await c.post("/api/v1/jobs", headers=admin, json={"task": "math.add", "payload": {"a": 0, "b": 0}, "unique_key": "u1"})
    assert first.json()["id"] == again.json()["id"]

    await drain(env.app)
    done = (await c.get(f"/api/v1/jobs/{job['id']}", headers=admin)).json()
    assert done["status"] == "completed" and done["result"] == 5

    page1 = await c.get("/api/v1/jobs", headers=admin, params={"limit": 2})
    assert page1.status_code == 200 and len(page1.json()["jobs"]) == 2
    cursor = page1.json()["next_cursor"]
    page2 = await c.get("/api/v1/jobs", headers=admin, params={"limit": 2, "cursor": cursor})
    ids1 = {j["id"] for j in page1.json()["jobs"]}
    ids2 = {j["id"] for j in page2.json()["jobs"]}
    assert ids2 and not ids1 & ids2
    completed = await c.get("/api/v1/jobs", headers=admin, params={"status": "completed", "queue": "math", "task": "math.add"})
    assert {j["status"] for j in completed.json()["jobs"]} == {"completed"}
    none = await c.get("/api/v1/jobs", headers=admin, params={"created_after": "2100-01-01T00:00:00Z"})
    assert none.json() == {"jobs": [], "next_cursor": None}


async def test_failed_job_shows_errors_and_retries(env: Env) -> None:
    c, admin = env.client, env.creds.admin_key
    job = (await c.post("/api/v1/jobs", headers=admin, json={"task": "always.fail", "payload": {"n": 1}})).json()
    await drain(env.app)
    failed = (await c.get(f"/api/v1/jobs/{job['id']}", headers=admin)).json()
    assert failed["status"] == "failed"
    assert failed["errors"][0]["type"] == "RuntimeError" and "boom" in failed["errors"][0]["message"]
    assert "Traceback" in failed["errors"][0]["traceback"]
    # Completed jobs cannot be retried: 409, nothing changes.
    _error(await c.post(f"/api/v1/jobs/{job['id']}/cancel", headers=admin), 409, "invalid_transition")
    bulk = await c.post("/api/v1/queues/default/retry-failed", headers=admin)
    assert bulk.status_code == 200 and bulk.json() == {"retried": 1}
    assert (await c.get(f"/api/v1/jobs/{job['id']}", headers=admin)).json()["status"] == "pending"


async def test_bad_input_is_422_and_changes_nothing(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    err = _error(await c.post("/api/v1/jobs", headers=admin, json={"task": "math.add", "payload": {"a": 1, "b": "x"}}), 422, "invalid_payload")
    assert err["details"][0]["loc"] == ["b"] and "'b'" in err["message"]
    _error(await c.post("/api/v1/jobs", headers=admin, json={"task": "no.such", "payload": {}}), 422, "unknown_task")
    _error(await c.post("/api/v1/jobs", headers=admin, json={"task": "math.add", "delay": -1}), 422, "validation_error")
    _error(await c.post("/api/v1/jobs", headers=admin, json={"task": "math.add", "surprise": 1}), 422, "validation_error")
    as_json = {**admin, "Content-Type": "application/json"}
    _error(await c.post("/api/v1/jobs", headers=as_json, content=b"{not json"), 422, "validation_error")
    _error(await c.post("/api/v1/jobs", headers=admin, content=b"{not json"), 415, "unsupported_media_type")
    _error(await c.get("/api/v1/jobs", headers=admin, params={"limit": 501}), 422, "validation_error")
    _error(await c.get("/api/v1/jobs", headers=admin, params={"cursor": "../../etc"}), 422, "validation_error")
    _error(await c.patch("/api/v1/queues/math", headers=admin, json={"concurrency": 0}), 422, "validation_error")
    assert (await env.app.alist_jobs()).jobs == []
    assert (await env.app.backend.queue_get(queue="math")).concurrency is None


async def test_unknown_ids_are_404(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    for method, path in [
        ("GET", f"/api/v1/jobs/{JOB}"), ("POST", f"/api/v1/jobs/{JOB}/cancel"),
        ("POST", f"/api/v1/jobs/{JOB}/retry"), ("GET", f"/api/v1/workflows/{JOB}"),
        ("POST", f"/api/v1/workflows/{JOB}/cancel"), ("POST", f"/api/v1/workflows/{JOB}/retry"),
        ("GET", "/api/v1/queues/nope"),
        ("POST", "/api/v1/queues/nope/pause"), ("GET", "/api/v1/schedules/nope"),
        ("POST", "/api/v1/schedules/nope/trigger"), ("DELETE", "/api/v1/schedules/nope"),
        ("GET", "/api/v1/services/nope"), ("POST", "/api/v1/services/nope/stop"),
    ]:
        _error(await c.request(method, path, headers=admin), 404, "not_found")


async def test_request_body_limit(env: Env) -> None:
    huge = b'{"task": "math.add", "payload": "' + b"x" * 1_100_000 + b'"}'

    async def chunks():
        for i in range(0, len(huge), 65536):
            yield huge[i : i + 65536]

    # Streamed without a Content-Length, so only the route's own limit can see it.
    headers = {**env.creds.admin_jwt, "Content-Type": "application/json"}
    response = await env.client.post("/api/v1/jobs", headers=headers, content=chunks())
    assert response.status_code == 413
    assert (await env.app.alist_jobs()).jobs == []


async def test_queues_counts_pause_resume_settings(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    await env.app.aenqueue("math.add", {"a": 1, "b": 1})
    queues = (await c.get("/api/v1/queues", headers=admin)).json()
    math = next(q for q in queues if q["name"] == "math")
    assert math["counts"]["pending"] == 1 and math["paused"] is False
    assert (await c.post("/api/v1/queues/math/pause", headers=admin)).json()["paused"] is True
    assert (await env.app.backend.queue_get(queue="math")).paused
    assert (await c.post("/api/v1/queues/math/resume", headers=admin)).json()["paused"] is False
    patched = await c.patch("/api/v1/queues/math", headers=admin, json={"concurrency": 3, "rate_limit": {"limit": 10, "period": 60}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["concurrency"] == 3 and patched.json()["rate_limit"] == {"limit": 10, "period": 60.0}
    cleared = await c.patch("/api/v1/queues/math", headers=admin, json={"rate_limit": None})
    assert cleared.json()["rate_limit"] is None and cleared.json()["concurrency"] == 3


async def test_schedules_lifecycle(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    body = {"name": "nightly", "task": "math.add", "cron": "30 6 * * *", "payload": {"a": 1, "b": 2}}
    created = await c.post("/api/v1/schedules", headers=admin, json=body)
    assert created.status_code == 201, created.text
    assert len(created.json()["next_fires"]) == 5
    _error(await c.post("/api/v1/schedules", headers=admin, json=body), 409, "conflict")
    _error(await c.post("/api/v1/schedules", headers=admin, json={**body, "name": "bad", "cron": "61 * * * *"}), 422, "invalid_schedule")
    _error(await c.post("/api/v1/schedules", headers=admin, json={**body, "name": "bad", "payload": {"a": "x"}}), 422, "invalid_payload")
    assert (await env.app.schedules.aget("bad")) is None

    got = (await c.get("/api/v1/schedules/nightly", headers=env.creds.viewer_jwt)).json()
    assert got["cron"] == "30 6 * * *" and got["next_fires"][0].endswith(("06:30:00Z", "06:30:00+00:00"))
    updated = await c.patch("/api/v1/schedules/nightly", headers=admin, json={"cron": "0 7 * * *"})
    assert updated.status_code == 200 and updated.json()["cron"] == "0 7 * * *"
    paused = (await c.post("/api/v1/schedules/nightly/pause", headers=admin)).json()
    assert paused["enabled"] is False and paused["next_fires"] == []
    assert (await c.post("/api/v1/schedules/nightly/resume", headers=admin)).json()["enabled"] is True
    fired = await c.post("/api/v1/schedules/nightly/trigger", headers=admin)
    assert fired.status_code == 201 and fired.json()["task"] == "math.add"
    assert [s["name"] for s in (await c.get("/api/v1/schedules", headers=admin)).json()] == ["nightly"]
    assert (await c.delete("/api/v1/schedules/nightly", headers=admin)).json() == {"removed": 1}
    assert (await c.get("/api/v1/schedules", headers=admin)).json() == []


async def test_declared_schedules_show_their_declarer_and_keep_a_pause(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    env.app.schedule("declared", task="math.add", every=60, payload={"a": 1, "b": 1})
    await env.app.schedules.sync_declared()
    got = (await c.get("/api/v1/schedules/declared", headers=env.creds.viewer_jwt)).json()
    declarer = env.app.schedules.declarer
    assert declarer is not None and got["source"] == "code" and got["declarer"] == declarer.label
    assert got["confirmed_at"] is not None and got["declarer_started_at"] is not None
    assert (await c.post("/api/v1/schedules/declared/pause", headers=admin)).json()["enabled"] is False
    report = await env.app.schedules.sync_declared()  # the scheduler's next confirmation
    assert report.confirmed == 1 and report.written == ()
    listed = (await c.get("/api/v1/schedules", headers=admin)).json()
    assert [(s["name"], s["enabled"]) for s in listed] == [("declared", False)]


async def test_schedule_sets_and_owners(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    env.app.schedules.define_set("plus", [
        {"key": "scan", "task": "math.add", "cron": "0 3 * * 1"},
        {"key": "report", "task": "math.add", "cron": "0 4 1 * *"},
    ])
    applied = await c.post("/api/v1/schedules/sets/plus/apply", headers=admin, json={"owner": "sub:42", "payload": {"a": 4, "b": 2}})
    assert applied.status_code == 200, applied.text
    assert len(applied.json()) == 2 and {s["owner"] for s in applied.json()} == {"sub:42"}
    owned = await c.get("/api/v1/schedules", headers=admin, params={"owner": "sub:42"})
    assert len(owned.json()) == 2
    assert (await c.delete("/api/v1/schedules/owners/sub:42", headers=admin)).json() == {"removed": 2}
    _error(await c.post("/api/v1/schedules/sets/nope/apply", headers=admin, json={"owner": "x"}), 404, "not_found")


async def test_services_controls(env: Env) -> None:
    c, admin = env.client, env.creds.admin_jwt
    tick = Tick()
    env.ctx.manager.register("tick", tick, name="Ticker")
    listed = (await c.get("/api/v1/services", headers=env.creds.viewer_jwt)).json()
    assert listed[0]["id"] == "tick" and listed[0]["status"] == "STOPPED" and listed[0]["periodic"]
    _error(await c.post("/api/v1/services/tick/run", headers=admin), 409, "invalid_transition")
    assert (await c.post("/api/v1/services/tick/start", headers=admin)).json()["status"] == "RUNNING"
    try:
        assert (await c.post("/api/v1/services/tick/pause", headers=admin)).json()["status"] == "PAUSED"
        assert (await c.post("/api/v1/services/tick/resume", headers=admin)).json()["status"] == "RUNNING"
        ran = (await c.post("/api/v1/services/tick/run", headers=admin)).json()
        assert tick.count >= 1 and ran["metrics"]["runs"] >= 1
    finally:
        stopped = (await c.post("/api/v1/services/tick/stop", headers=admin)).json()
    assert stopped["status"] == "STOPPED"


class Failing(PeriodicService):
    """A periodic service whose every run fails."""

    def __init__(self) -> None:
        super().__init__(config=PeriodicServiceConfig(interval=0.01, max_consecutive_failures=2))

    async def execute(self) -> None:
        raise RuntimeError("no luck")


async def test_services_restart_and_start_all(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    c, admin = env.client, env.creds.admin_jwt
    manager = env.ctx.manager
    tick, failing = Tick(), Failing()
    manager.register("tick", tick, name="Ticker")
    manager.register("failing", failing, name="Failing")
    manager.register("manual", Tick(), name="Manual", auto_start=False)
    caplog.set_level("INFO", logger="taskyard.http.audit")
    started = await c.post("/api/v1/services/start-all", headers=admin)
    assert started.status_code == 200, started.text
    try:
        by_id = {s["id"]: s for s in started.json()}
        assert by_id["tick"]["status"] == "RUNNING" and by_id["manual"]["status"] == "STOPPED"
        await until(lambda: failing.status.value == "ERROR", timeout=10, what="failing to give up")
        shown = (await c.get("/api/v1/services/failing", headers=env.creds.viewer_jwt)).json()
        assert shown["status"] == "ERROR" and shown["metrics"]["consecutive_failures"] == 2
        assert "2 runs failed in a row" in shown["error"] and shown["restarts"] == 0
        again = (await c.post("/api/v1/services/start-all", headers=admin)).json()
        assert {s["id"]: s["status"] for s in again}["failing"] == "RUNNING"  # started again
        restarted = (await c.post("/api/v1/services/tick/restart", headers=admin)).json()
        assert (restarted["status"], restarted["restarts"], restarted["gave_up"]) == ("RUNNING", 1, False)
        _error(await c.post("/api/v1/services/nope/restart", headers=admin), 404, "not_found")
    finally:
        await manager.stop_all()
    audited = [r.getMessage() for r in caplog.records if r.name == "taskyard.http.audit"]
    assert any("admin action service.start-all on services" in m and "started=tick,failing" in m for m in audited)
    assert any(m.endswith("started=failing") for m in audited)  # the second: only what was down
    assert any("admin action service.restart on tick" in m for m in audited)


async def test_leaders_show_each_duty_lease_and_who_holds_it(env: Env) -> None:
    from taskyard.services.leader import LeaderElector

    await env.app.open()
    mine = LeaderElector(env.app.backend, name="maintenance", ttl=30, service_id="leader:maintenance")
    env.ctx.manager.register(mine.id, mine, name="Leader election for maintenance")
    await env.app.backend.leader_attempt_elect(name="scheduler", holder="box-2:4242:abcdef", ttl=30)
    await mine.attempt()
    listed = (await env.client.get("/api/v1/leaders", headers=env.creds.viewer_jwt)).json()
    by_lease = {row["lease"]: row for row in listed}
    assert list(by_lease)[:3] == ["scheduler", "maintenance", "alerter"]
    assert by_lease["scheduler"] | {"elected_at": None, "expires_at": None} == {
        "lease": "scheduler", "holder": "box-2:4242:abcdef", "host": "box-2", "pid": 4242,
        "elected_at": None, "expires_at": None, "runs_here": False, "leads_here": False,
    }
    assert by_lease["maintenance"]["runs_here"] and by_lease["maintenance"]["leads_here"]
    assert by_lease["maintenance"]["holder"] == mine.holder
    assert by_lease["alerter"]["holder"] is None and not by_lease["alerter"]["runs_here"]
    service = (await env.client.get("/api/v1/services/leader:maintenance", headers=env.creds.viewer_jwt))
    assert service.json()["lease"] == {"name": "maintenance", "leader": True}


async def test_workers_list(env: Env) -> None:
    now = env.app.clock.now()
    await env.app.open()
    await env.app.backend.worker_heartbeat(info=WorkerInfo(
        id="w1", host="h", pid=42, queues=("math",), concurrency=4, started_at=now,
        last_heartbeat=now, current_jobs=(JOB,)))
    workers = (await env.client.get("/api/v1/workers", headers=env.creds.viewer_key)).json()
    assert workers[0]["id"] == "w1" and workers[0]["current_jobs"] == [JOB]
    assert workers[0]["tasks"] == [] and workers[0]["lost_threads"] == 0


async def test_tasks_list_shows_which_waiting_jobs_no_live_worker_knows(env: Env) -> None:
    from dataclasses import replace

    from taskyard.core.job import JobDraft

    c, viewer = env.client, env.creds.viewer_jwt
    now = env.app.clock.now()
    await env.app.open()
    backend = env.app.backend
    # Another app's jobs, in this app's queue and in its own; one of this app's jobs too.
    await backend.job_enqueue_many(drafts=[
        JobDraft(id=f"01M831ZZHYQ2TZ80B4QPZGTA{i:02d}", task="images.thumbnail", queue=queue, payload=None)
        for i, queue in enumerate(("images", "images", "math"))
    ], now=now)
    await env.app.aenqueue("math.add", {"a": 1, "b": 2})
    base = WorkerInfo(id="w-math", host="h", pid=1, queues=("*",), concurrency=4, started_at=now,
                      last_heartbeat=now, tasks=("math.add",))
    await backend.worker_heartbeat(info=base)
    # A worker that knows the thumbnails but has been silent for ten minutes is not live.
    stale = replace(base, id="w-old", tasks=("images.thumbnail",),
                    last_heartbeat=now.replace(year=now.year - 1))
    await backend.worker_heartbeat(info=stale)

    listed = (await c.get("/api/v1/tasks", headers=viewer)).json()
    by_task = {t["task"]: t for t in listed}
    assert [t["task"] for t in listed] == ["images.thumbnail", "math.add"]
    thumbs = by_task["images.thumbnail"]
    assert thumbs["pending"] == 3 and thumbs["queues"] == ["images", "math"]
    assert thumbs["workers"] == [] and thumbs["unclaimable"] is True
    assert thumbs["waiting_since"] is not None
    assert by_task["math.add"]["workers"] == ["w-math"] and by_task["math.add"]["unclaimable"] is False
    only = (await c.get("/api/v1/tasks", headers=viewer, params={"unclaimable": "true"})).json()
    assert [t["task"] for t in only] == ["images.thumbnail"]

    # Once a live worker registers the task, nothing is unclaimable.
    await backend.worker_heartbeat(info=replace(stale, last_heartbeat=now))
    listed = (await c.get("/api/v1/tasks", headers=viewer)).json()
    assert not any(t["unclaimable"] for t in listed)
    assert listed[0]["workers"] == ["w-old"]

    schema = (await c.get("/api/v1/openapi.json", headers=viewer)).json()
    assert "/api/v1/tasks" in schema["paths"]
    assert "TaskOut" in schema["components"]["schemas"]


async def test_the_http_service_cannot_be_stopped_through_its_own_api(env: Env) -> None:
    from taskyard.http.service import HttpService

    http = HttpService(env.asgi, host="127.0.0.1", port=0)
    env.ctx.manager.register("http", http, name="HTTP")
    await env.ctx.manager.start("http")
    try:
        err = _error(await env.client.post("/api/v1/services/http/stop", headers=env.creds.admin_jwt), 409, "invalid_transition")
        assert "cannot be stopped" in err["message"]
        err = _error(await env.client.post("/api/v1/services/http/pause", headers=env.creds.admin_jwt), 409, "invalid_transition")
        assert "cannot be paused" in err["message"]
        err = _error(await env.client.post("/api/v1/services/http/restart", headers=env.creds.admin_jwt), 409, "invalid_transition")
        assert "cannot be restarted" in err["message"]
        assert http.status.value == "RUNNING"
        shown = (await env.client.get("/api/v1/services/http", headers=env.creds.viewer_jwt)).json()
        assert (shown["pausable"], shown["stoppable"]) == (False, False)
    finally:
        await env.ctx.manager.stop("http")


async def test_alerts_are_listed_with_their_state_for_viewers(env: Env) -> None:
    from taskyard.core.alert import parse_rule
    from taskyard.services.alerts import Alerter

    c = env.client
    assert (await c.get("/api/v1/alerts", headers=env.creds.viewer_jwt)).json() == {
        "evaluated_here": False, "alerts": [],
    }
    _error(await c.get("/api/v1/alerts"), 401, "unauthorized")
    rules = [
        parse_rule({"name": "math-unattended", "kind": "no_worker", "queue": "math"}),
        parse_rule({"name": "math-deep", "kind": "queue_depth", "queue": "math", "threshold": 5}),
    ]
    alerter = Alerter(env.app.backend, rules, [], manager=env.ctx.manager)
    env.ctx.manager.register(alerter.id, alerter, name="Alerter")
    await env.app.aenqueue("math.add", {"a": 1, "b": 2})
    await alerter.execute()
    body = (await c.get("/api/v1/alerts", headers=env.creds.viewer_key)).json()
    assert body["evaluated_here"] is True
    states = {a["name"]: a for a in body["alerts"]}
    assert states["math-unattended"]["state"] == "firing"
    assert states["math-unattended"]["labels"] == {"queue": "math"}
    assert states["math-unattended"]["started_at"] is not None
    assert states["math-deep"]["state"] == "ok"

    form = await c.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]*)"', form.text).group(1)
    token = env.creds.viewer_key["Authorization"].removeprefix("Bearer ")
    assert (await c.post("/login", data={"csrf": csrf, "token": token, "next": "/"})).status_code == 303
    page = await c.get("/")
    assert page.status_code == 200 and 'data-alert="math-unattended"' in page.text
    assert 'data-alert="math-deep"' not in page.text  # only pending and firing alerts show
