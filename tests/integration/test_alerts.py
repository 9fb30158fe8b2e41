"""Alerts end to end: a real `Alerter` over real jobs (run by a burst worker), a real HTTP
server receiving the webhook POSTs and a real SMTP server (aiosmtpd) receiving the e-mails.

Tests drive `execute()` directly: a notification is delivered before `execute()` returns,
so nothing sleeps or polls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from taskyard import Retry, Taskyard
from taskyard.clock import FakeClock, SystemClock
from taskyard.config import load_settings
from taskyard.core.alert import AlertKind, AlertRule, parse_rule
from taskyard.core.cluster import WorkerInfo
from taskyard.core.schedule import Schedule
from taskyard.errors import ConfigError
from taskyard.server import TaskServer
from taskyard.services.alerts import Alerter, EmailNotifier, LogNotifier, WebhookNotifier
from taskyard.services.base import Service, ServiceStatus
from taskyard.services.manager import ServiceManager
from taskyard.testing import drain

pytestmark = pytest.mark.timeout(30)


# -- a webhook receiver ---------------------------------------------------------------------
@dataclass
class Receiver:
    """A real HTTP server on a free loopback port that records every POST."""

    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    #: Status codes to answer with, in order; 200 once they run out.
    replies: list[int] = field(default_factory=list)
    attempts: int = 0

    def bodies(self, state: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.posts if state is None or p["state"] == state]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                state.attempts += 1
                code = state.replies.pop(0) if state.replies else 200
                if code == 200:
                    state.posts.append(json.loads(body))
                    state.headers.append(dict(self.headers))
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="webhook-receiver", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- an SMTP server -------------------------------------------------------------------------
class Inbox:
    """aiosmtpd handler that keeps every message it accepts, and who logged in."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        mail = message_from_bytes(raw, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.messages.append((envelope, mail))
        return "250 OK"

    def authenticate(self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"taskyard", b"hunter2")
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port,
        authenticator=inbox.authenticate, auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


# -- apps -----------------------------------------------------------------------------------
@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Taskyard]:
    """An app on a fresh SQLite file: payments always fail, refunds always succeed."""
    app = Taskyard(f"sqlite:///{tmp_path / 'alerts.db'}")

    @app.task("payments.charge", queue="payments", retry=Retry(attempts=1))
    async def charge(payload: dict) -> None:
        raise ValueError("card declined")

    @app.task("payments.refund", queue="payments")
    async def refund(payload: dict) -> str:
        return "refunded"

    @app.task("emails.send", queue="emails")
    async def send(payload: dict) -> str:
        return "sent"

    await app.open()
    try:
        yield app
    finally:
        await app.aclose()


def alerter(app: Taskyard, rules: Sequence[AlertRule], notifiers: Sequence[Any] = (), **kwargs: Any) -> Alerter:
    return Alerter(app.backend, rules, notifiers, **kwargs)


async def enqueue(app: Taskyard, task: str, n: int) -> None:
    for i in range(n):
        await app.aenqueue(task, {"i": i})


# -- tests ----------------------------------------------------------------------------------
async def test_failure_rate_fires_once_and_resolves_once_by_webhook_and_email(
    app: Taskyard, receiver: Receiver, smtp: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    inbox, port = smtp
    rule = parse_rule({
        "name": "payments-failing", "kind": "failure_rate", "queue": "payments",
        "threshold": 50, "window": 300, "min_outcomes": 3,
    })
    notifiers = [
        LogNotifier(),
        WebhookNotifier(receiver.url, timeout=5, retries=0, headers={"Authorization": "Bearer t0ken"}),
        EmailNotifier(host="127.0.0.1", port=port, sender="taskyard@example.com",
                      to=["ops@example.com"], username="taskyard", password="hunter2"),
    ]
    a = alerter(app, [rule], notifiers)
    caplog.set_level(logging.INFO, logger="taskyard.alerts")

    await enqueue(app, "payments.charge", 2)
    await drain(app)
    await a.execute()  # 2 of 2 failed: below min_outcomes, nobody is paged
    assert receiver.posts == [] and inbox.messages == []

    await enqueue(app, "payments.charge", 1)
    await drain(app)
    await a.execute()
    [fired] = receiver.posts
    assert fired["name"] == "payments-failing" and fired["kind"] == "failure_rate"
    assert (fired["state"], fired["value"], fired["threshold"]) == ("firing", 100.0, 50)
    assert fired["labels"] == {"queue": "payments"}
    assert fired["started_at"] == fired["at"]
    assert receiver.headers[0]["Authorization"] == "Bearer t0ken"
    assert receiver.headers[0]["Content-Type"] == "application/json"
    [(envelope, mail)] = inbox.messages
    assert envelope.rcpt_tos == ["ops@example.com"] and inbox.logins == ["taskyard"]
    assert mail["Subject"] == "[taskyard] FIRING payments-failing (failure_rate, queue=payments) value=100 threshold=50"
    assert mail["From"] == "taskyard@example.com"
    assert json.loads(mail.get_content().replace("\r\n", "\n").split("\n\n", 1)[1])["state"] == "firing"
    warnings = [r for r in caplog.records if r.name == "taskyard.alerts"]
    assert [(r.levelno, r.getMessage()) for r in warnings] == [
        (logging.WARNING, "alert FIRING payments-failing (failure_rate, queue=payments) value=100 threshold=50")
    ]

    await enqueue(app, "payments.charge", 2)
    await drain(app)
    for _ in range(3):  # still failing: no storm
        await a.execute()
    assert len(receiver.posts) == 1 and len(inbox.messages) == 1
    assert a.states()[0]["state"] == "firing"

    await enqueue(app, "payments.refund", 10)  # 5 of 15 failed: 33 %
    await drain(app)
    await a.execute()
    await a.execute()
    assert [p["state"] for p in receiver.posts] == ["firing", "resolved"]
    resolved = receiver.posts[1]
    assert resolved["started_at"] == fired["started_at"]
    assert round(resolved["value"], 1) == 33.3
    assert [m["Subject"].split()[1] for _, m in inbox.messages] == ["FIRING", "RESOLVED"]
    alert_lines = [r for r in caplog.records if r.name == "taskyard.alerts"]
    assert [(r.levelno, r.getMessage()) for r in alert_lines[1:]] == [
        (logging.INFO, "alert RESOLVED payments-failing (failure_rate, queue=payments) value=33.33 threshold=50")
    ]
    assert a.notified == 2 and a.notify_failures == 0
    assert "hunter2" not in caplog.text and "t0ken" not in caplog.text


async def test_queue_depth_waits_for_its_duration_and_no_worker_sees_the_registry(
    app: Taskyard, receiver: Receiver
) -> None:
    clock = FakeClock(SystemClock().now())
    rules = [
        AlertRule("emails-backlog", AlertKind.QUEUE_DEPTH, queue="emails", threshold=3, for_seconds=60),
        AlertRule("orphaned", AlertKind.NO_WORKER, worker_timeout=60),
    ]
    a = alerter(app, rules, [WebhookNotifier(receiver.url, retries=0)], clock=clock)
    await enqueue(app, "emails.send", 5)

    await a.execute()
    assert [(p["name"], p["labels"], p["value"]) for p in receiver.posts] == [
        ("orphaned", {"queue": "emails"}, 5.0)
    ]
    depth = next(s for s in a.states() if s["name"] == "emails-backlog")
    assert (depth["state"], depth["value"]) == ("pending", 5.0)

    clock.advance(59)
    await a.execute()
    assert len(receiver.posts) == 1
    clock.advance(1)
    await a.execute()
    assert [p["name"] for p in receiver.posts] == ["orphaned", "emails-backlog"]

    # A worker that works every queue registers: no_worker resolves, the backlog stays.
    now = clock.now()
    await app.backend.worker_heartbeat(info=WorkerInfo(
        id="w1", host="h", pid=1, queues=("*",), concurrency=1, started_at=now, last_heartbeat=now,
    ))
    await a.execute()
    assert [(p["name"], p["state"]) for p in receiver.posts[2:]] == [("orphaned", "resolved")]

    # It falls silent: after its timeout it no longer counts as live.
    clock.advance(61)
    await a.execute()
    assert [(p["name"], p["state"]) for p in receiver.posts[3:]] == [("orphaned", "firing")]

    await drain(app, queues=("emails",))
    await a.execute()
    assert sorted((p["name"], p["state"]) for p in receiver.posts[4:]) == [
        ("emails-backlog", "resolved"), ("orphaned", "resolved"),
    ]
    await a.execute()
    assert len(receiver.posts) == 6
    assert {s["state"] for s in a.states()} == {"ok"}


async def test_unclaimable_task_fires_once_for_another_apps_jobs_and_resolves_when_they_run(
    app: Taskyard, receiver: Receiver
) -> None:
    from taskyard.core.ids import new_id
    from taskyard.core.job import JobDraft

    clock = FakeClock(SystemClock().now())
    rule = parse_rule({"name": "nobody-runs-it", "kind": "unclaimable_task", "max_wait": 300})
    a = alerter(app, [rule], [WebhookNotifier(receiver.url, retries=0)], clock=clock)
    # Another app's jobs on this store; this app's burst worker runs its own and leaves them.
    await app.backend.job_enqueue_many(drafts=[
        JobDraft(id=new_id(), task="images.thumbnail", queue="emails", payload={"i": i}) for i in range(4)
    ], now=clock.now())
    await enqueue(app, "emails.send", 2)
    await drain(app)
    await a.execute()
    assert receiver.posts == []  # unclaimable, but not waiting for five minutes yet

    clock.advance(301)
    await a.execute()
    assert [(p["name"], p["state"], p["labels"], p["threshold"]) for p in receiver.posts] == [
        ("nobody-runs-it", "firing", {"task": "images.thumbnail"}, 300.0)
    ]
    assert receiver.posts[0]["value"] >= 301.0
    clock.advance(15)
    await a.execute()
    assert len(receiver.posts) == 1  # still firing: told once

    images = Taskyard(app.backend)

    @images.task("images.thumbnail", queue="emails")
    async def thumbnail(payload: dict) -> str:
        return "thumb"

    await drain(images)
    await a.execute()
    assert [(p["name"], p["state"]) for p in receiver.posts[1:]] == [("nobody-runs-it", "resolved")]
    counts = (await app.acounts())["emails"]
    assert (counts["completed"], counts["failed"]) == (6, 0)


class Crashes(Service):
    """A service whose main loop dies at once."""

    def __init__(self) -> None:
        super().__init__("importer")
        self.failed = asyncio.Event()
        self.subscribe(lambda e: self.failed.set() if e.status is ServiceStatus.ERROR else None)

    async def run(self) -> None:
        raise RuntimeError("inbox unreachable")


async def test_service_error_from_the_manager(app: Taskyard, receiver: Receiver) -> None:
    manager = ServiceManager()
    crashing = Crashes()
    manager.register("importer", crashing, critical=False)
    a = alerter(app, [AlertRule("services-down", AlertKind.SERVICE_ERROR)],
                [WebhookNotifier(receiver.url, retries=0)], manager=manager)
    manager.register("alerter", a)
    await a.execute()
    assert receiver.posts == []
    await manager.start("importer")
    await crashing.failed.wait()
    await a.execute()
    assert [(p["labels"], p["state"]) for p in receiver.posts] == [({"service": "importer"}, "firing")]
    await manager.stop_all()


async def test_schedule_missed(app: Taskyard, receiver: Receiver) -> None:
    now = SystemClock().now()
    await app.backend.schedule_upsert(schedule=Schedule(
        name="nightly", task="emails.send", every=86400.0, next_fire_at=now - timedelta(minutes=10),
    ))
    await app.backend.schedule_upsert(schedule=Schedule(
        name="soon", task="emails.send", every=60.0, next_fire_at=now + timedelta(seconds=30),
    ))
    a = alerter(app, [AlertRule("late", AlertKind.SCHEDULE_MISSED, grace=120)],
                [WebhookNotifier(receiver.url, retries=0)])
    await a.execute()
    [post] = receiver.posts
    assert (post["labels"], post["threshold"]) == ({"schedule": "nightly"}, 120)
    assert 590 < post["value"] < 700


async def test_a_failing_notifier_is_logged_and_never_breaks_the_alerter(
    app: Taskyard, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.replies = [500, 500, 500]
    dead_smtp = EmailNotifier(host="127.0.0.1", port=free_port(), sender="a@example.com", to=["b@example.com"], timeout=2)
    a = alerter(
        app, [AlertRule("backlog", AlertKind.QUEUE_DEPTH, queue="emails", threshold=0)],
        [WebhookNotifier(receiver.url, retries=1, retry_delay=0), dead_smtp],
    )
    await enqueue(app, "emails.send", 1)
    await a.execute()
    assert receiver.attempts == 2 and receiver.posts == []  # one retry, then it gave up
    assert a.notify_failures == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(m.startswith("alert notifier webhook failed for FIRING backlog") and "HTTP 500" in m for m in errors)
    assert any(m.startswith("alert notifier email failed for FIRING backlog") for m in errors)
    # Delivery is not retried on later ticks: the alert is firing, once.
    await a.execute()
    assert receiver.attempts == 2 and a.states()[0]["state"] == "firing"
    # The log notifier was on anyway.
    assert any(r.levelno == logging.WARNING and "FIRING backlog" in r.getMessage() for r in caplog.records)


async def test_a_webhook_retry_delivers_once(app: Taskyard, receiver: Receiver) -> None:
    receiver.replies = [503]
    a = alerter(app, [AlertRule("backlog", AlertKind.QUEUE_DEPTH, queue="emails", threshold=0)],
                [WebhookNotifier(receiver.url, retries=2, retry_delay=0)])
    await enqueue(app, "emails.send", 1)
    await a.execute()
    assert receiver.attempts == 2 and len(receiver.posts) == 1 and a.notify_failures == 0


@dataclass
class Term:
    """What the alerter reads of a LeaderElector: its count of leadership changes."""

    changes: int = 1
    is_leader: bool = True


async def test_after_a_leadership_change_a_firing_alert_is_notified_once_more(
    app: Taskyard, receiver: Receiver
) -> None:
    rules = [AlertRule("backlog", AlertKind.QUEUE_DEPTH, queue="emails", threshold=0)]
    term = Term()
    a = alerter(app, rules, [WebhookNotifier(receiver.url, retries=0)], leader=term)
    await enqueue(app, "emails.send", 1)
    await a.execute()
    await a.execute()
    assert len(receiver.posts) == 1
    term.changes += 2  # lost leadership, then won it back: what it remembers may be stale
    await a.execute()
    assert [p["state"] for p in receiver.posts] == ["firing", "firing"]
    # A new leader (another process) starts from nothing too: once more, then quiet.
    successor = alerter(app, rules, [WebhookNotifier(receiver.url, retries=0)])
    await successor.execute()
    await successor.execute()
    assert len(receiver.posts) == 3
    assert json.loads(json.dumps(successor.states()))[0]["state"] == "firing"


# -- the task server ------------------------------------------------------------------------

def test_the_server_registers_the_alerter_with_code_and_config_rules(clean_env: Path) -> None:
    app = Taskyard("memory://")
    app.alert("payments-failing", kind="failure_rate", queue="payments", threshold=20)
    settings = load_settings(
        backend="memory://", http={"enabled": False},
        alerts={"interval": 5, "rules": [{"name": "backlog", "kind": "queue_depth", "threshold": 100, "for": 300}]},
    )
    server = TaskServer(app, settings, only="maintenance")
    server.build()
    a = server.manager.get("alerter").service
    assert isinstance(a, Alerter)
    assert [r.name for r in a.rules] == ["payments-failing", "backlog"]
    assert a.config.leader_only and a.config.interval == 5
    assert a.leader is server.leaders["alerter"] and a.manager is server.manager
    assert a.leader.lease_name == "alerter"
    assert server.manager.get("alerter").depends_on == ("leader:alerter",)


def test_the_server_without_rules_or_disabled_has_no_alerter(clean_env: Path) -> None:
    for alerts in ({}, {"enabled": False, "rules": [{"name": "x", "kind": "no_worker"}]}):
        server = TaskServer(Taskyard("memory://"), load_settings(backend="memory://", http={"enabled": False}, alerts=alerts),
                            only="maintenance")
        server.build()
        assert "alerter" not in [e.id for e in server.manager.services()]


def test_a_rule_in_code_and_config_with_one_name_is_an_error(clean_env: Path) -> None:
    app = Taskyard("memory://")
    app.alert("backlog", kind="queue_depth", threshold=1)
    settings = load_settings(
        backend="memory://", http={"enabled": False},
        alerts={"rules": [{"name": "backlog", "kind": "queue_depth", "threshold": 100}]},
    )
    with pytest.raises(ConfigError) as info:
        TaskServer(app, settings, only="maintenance").build()
    assert str(info.value) == (
        "invalid setting 'alerts.rules': rule 'backlog' is also declared in code (app.alert)"
    )
