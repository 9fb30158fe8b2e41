"""Alerts: rules, each kind's reading of an observation, and the state machine
ok → pending → firing → resolved → ok on a FakeClock (one fire, one resolve per episode)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from taskyard import Taskyard
from taskyard.clock import FakeClock
from taskyard.config import load_settings
from taskyard.core.alert import (
    AlertEvent,
    AlertKind,
    AlertRule,
    AlertState,
    AlertStatus,
    Labels,
    Observation,
    ScheduleSeen,
    WorkerSeen,
    evaluate,
    parse_rule,
    readings,
)
from taskyard.core.coverage import TaskCounts, TaskCoverage, task_coverage
from taskyard.core.queue import StatsRow
from taskyard.errors import ConfigError


class Run:
    """Feeds observations to one rule on a FakeClock and keeps every event."""

    def __init__(self, rule: AlertRule, clock: FakeClock) -> None:
        self.rule = rule
        self.clock = clock
        self.states: Mapping[Labels, AlertStatus] = {}
        self.events: list[AlertEvent] = []

    def step(self, observation: Observation, *, after: float = 0.0) -> list[AlertEvent]:
        self.clock.advance(after)
        result = evaluate(self.rule, observation, self.states, self.clock.now())
        self.states = result.states
        self.events.extend(result.events)
        return result.events

    def state(self, **labels: str) -> AlertState:
        return self.states[tuple(labels.items())].state


def depth(**queues: int) -> Observation:
    return Observation(waiting=queues)


# -- the state machine ----------------------------------------------------------------------
def test_fires_once_after_for_then_resolves_once() -> None:
    clock = FakeClock()
    run = Run(AlertRule("deep", AlertKind.QUEUE_DEPTH, queue="emails", threshold=100, for_seconds=60), clock)
    assert run.step(depth(emails=150)) == []
    assert run.state(queue="emails") is AlertState.PENDING
    assert run.step(depth(emails=160), after=30) == []
    fired = run.step(depth(emails=170), after=30)  # 60 s since it turned true
    assert [(e.state, e.value, e.threshold, e.labels) for e in fired] == [
        (AlertState.FIRING, 170.0, 100.0, (("queue", "emails"),))
    ]
    assert fired[0].started_at == clock.now()
    for _ in range(10):  # still true: no storm
        assert run.step(depth(emails=500), after=15) == []
    assert run.state(queue="emails") is AlertState.FIRING
    resolved = run.step(depth(emails=3), after=15)
    assert [(e.state, e.started_at, e.value) for e in resolved] == [
        (AlertState.RESOLVED, fired[0].at, 3.0)
    ]
    assert run.state(queue="emails") is AlertState.RESOLVED
    assert run.step(depth(emails=3), after=15) == []
    assert run.state(queue="emails") is AlertState.OK
    assert [e.state for e in run.events] == [AlertState.FIRING, AlertState.RESOLVED]


def test_flapping_inside_the_for_window_notifies_nothing() -> None:
    clock = FakeClock()
    run = Run(AlertRule("deep", AlertKind.QUEUE_DEPTH, queue="q", threshold=10, for_seconds=60), clock)
    for _ in range(20):
        run.step(depth(q=50), after=15)
        run.step(depth(q=0), after=15)
    assert run.events == []
    # Each true stretch restarts the clock: only 60 s of continuous truth fires.
    run.step(depth(q=50), after=15)
    run.step(depth(q=50), after=45)
    assert run.step(depth(q=50), after=14) == []
    assert [e.state for e in run.step(depth(q=50), after=1)] == [AlertState.FIRING]


def test_without_for_it_fires_at_the_first_true_evaluation() -> None:
    clock = FakeClock()
    run = Run(AlertRule("deep", AlertKind.QUEUE_DEPTH, queue="q", threshold=0), clock)
    assert run.step(depth(q=0)) == []
    assert [e.state for e in run.step(depth(q=1), after=15)] == [AlertState.FIRING]


def test_a_new_episode_after_resolving_fires_again() -> None:
    clock = FakeClock()
    run = Run(AlertRule("deep", AlertKind.QUEUE_DEPTH, queue="q", threshold=10, for_seconds=30), clock)
    for value in (50, 50, 50, 0, 0, 50, 50, 50, 0):
        run.step(depth(q=value), after=15)
    assert [e.state for e in run.events] == [AlertState.FIRING, AlertState.RESOLVED] * 2


def test_one_instance_per_queue_when_the_rule_names_none() -> None:
    clock = FakeClock()
    run = Run(AlertRule("deep", AlertKind.QUEUE_DEPTH, threshold=10), clock)
    events = run.step(depth(a=50, b=5, c=11))
    assert sorted(e.labels for e in events) == [(("queue", "a"),), (("queue", "c"),)]
    assert run.state(queue="b") is AlertState.OK
    # Queue c disappears from the observation while firing: it resolves, then is forgotten.
    events = run.step(depth(a=50, b=5), after=15)
    assert [(e.labels, e.state) for e in events] == [((("queue", "c"),), AlertState.RESOLVED)]
    run.step(depth(a=50, b=5), after=15)
    assert (("queue", "c"),) not in run.states


# -- each kind's reading --------------------------------------------------------------------
def stats(now: datetime, *rows: tuple[int, str, int, int]) -> Observation:
    """Rows of (minutes ago, queue, completed, failed)."""
    minute = now.replace(second=0, microsecond=0)
    return Observation(outcomes=[
        StatsRow(minute=minute - timedelta(minutes=ago), queue=q, completed=c, failed=f)
        for ago, q, c, f in rows
    ])


def test_failure_rate_needs_its_minimum_of_outcomes() -> None:
    clock = FakeClock(datetime.fromisoformat("2026-01-01T12:00:30+00:00"))
    rule = AlertRule("pay", AlertKind.FAILURE_RATE, queue="payments", threshold=20, window=300, min_outcomes=5)
    now = clock.now()
    one_of_one = readings(rule, stats(now, (0, "payments", 0, 1)), now)
    assert [(r.active, r.value) for r in one_of_one] == [(False, 100.0)]
    enough = readings(rule, stats(now, (0, "payments", 3, 1), (2, "payments", 0, 1)), now)
    assert [(r.active, r.value) for r in enough] == [(True, 40.0)]
    at_threshold = readings(rule, stats(now, (0, "payments", 8, 2)), now)
    assert [r.active for r in at_threshold] == [False]  # above, not at
    nothing = readings(rule, Observation(), now)
    assert [(r.labels, r.active, r.value) for r in nothing] == [((("queue", "payments"),), False, 0.0)]


def test_failure_rate_counts_only_the_minutes_in_its_window() -> None:
    clock = FakeClock(datetime.fromisoformat("2026-01-01T12:00:30+00:00"))
    rule = AlertRule("pay", AlertKind.FAILURE_RATE, threshold=50, window=120, min_outcomes=1)
    now = clock.now()
    obs = stats(now, (10, "a", 0, 50), (1, "a", 9, 1), (0, "b", 1, 3))
    found = {r.labels: (r.active, r.value) for r in readings(rule, obs, now)}
    assert found == {(("queue", "a"),): (False, 10.0), (("queue", "b"),): (True, 75.0)}


def test_service_error() -> None:
    now = FakeClock().now()
    obs = Observation(services={"worker": "RUNNING", "importer": "ERROR"})
    every = readings(AlertRule("svc", AlertKind.SERVICE_ERROR), obs, now)
    assert [(r.labels, r.active) for r in every] == [
        ((("service", "importer"),), True), ((("service", "worker"),), False)
    ]
    gone = readings(AlertRule("svc", AlertKind.SERVICE_ERROR, service="mailer"), obs, now)
    assert [(r.labels, r.active) for r in gone] == [((("service", "mailer"),), False)]


def test_no_worker() -> None:
    now = FakeClock().now()
    rule = AlertRule("orphans", AlertKind.NO_WORKER, worker_timeout=60)
    fresh, stale = now - timedelta(seconds=5), now - timedelta(seconds=61)

    def active(*workers: WorkerSeen) -> dict[str, bool]:
        obs = Observation(waiting={"emails": 3, "media": 2, "idle": 0}, workers=workers)
        return {dict(r.labels)["queue"]: r.active for r in readings(rule, obs, now)}

    assert active() == {"emails": True, "media": True, "idle": False}
    assert active(WorkerSeen("w1", ("*",), fresh)) == {"emails": False, "media": False, "idle": False}
    assert active(WorkerSeen("w1", (), fresh)) == {"emails": False, "media": False, "idle": False}
    assert active(WorkerSeen("w1", ("emails",), fresh)) == {"emails": False, "media": True, "idle": False}
    assert active(WorkerSeen("w1", ("*",), stale)) == {"emails": True, "media": True, "idle": False}


def test_schedule_missed() -> None:
    now = FakeClock().now()
    rule = AlertRule("late", AlertKind.SCHEDULE_MISSED, grace=60)
    obs = Observation(schedules=[
        ScheduleSeen("nightly", True, now - timedelta(seconds=61)),
        ScheduleSeen("hourly", True, now - timedelta(seconds=59)),
        ScheduleSeen("paused", False, now - timedelta(hours=3)),
        ScheduleSeen("future", True, now + timedelta(minutes=5)),
        ScheduleSeen("done", True, None),
    ])
    found = {dict(r.labels)["schedule"]: (r.active, r.value) for r in readings(rule, obs, now)}
    assert found == {
        "nightly": (True, 61.0), "hourly": (False, 59.0), "paused": (False, 0.0),
        "future": (False, 0.0), "done": (False, 0.0),
    }
    one = readings(AlertRule("late", AlertKind.SCHEDULE_MISSED, schedule="hourly"), obs, now)
    assert [dict(r.labels) for r in one] == [{"schedule": "hourly"}]


def test_unclaimable_task_fires_once_after_max_wait_and_resolves_once() -> None:
    clock = FakeClock()
    rule = parse_rule({"name": "unknown-tasks", "kind": "unclaimable_task", "max_wait": 300})
    run = Run(rule, clock)
    since = clock.now()
    thumbs = TaskCounts(queue="images", task="images.thumbnail", pending=110, waiting_since=since)
    resize = TaskCounts(queue="images", task="images.resize", pending=3, waiting_since=since)
    knows_resize = WorkerSeen("new", ("*",), since, tasks=("images.resize",))

    def tick(after: float, *workers: WorkerSeen) -> list[AlertEvent]:
        clock.advance(after)  # the workers beat just now
        beating = [replace(w, last_heartbeat=clock.now()) for w in workers]
        return run.step(Observation(tasks=(thumbs, resize), workers=beating))

    assert tick(60, knows_resize) == []
    assert run.state(task="images.thumbnail") is AlertState.OK  # waited 60 s, not 300 yet
    fired = tick(241, knows_resize)
    assert [(e.state, dict(e.labels), e.value, e.threshold) for e in fired] == [
        (AlertState.FIRING, {"task": "images.thumbnail"}, 301.0, 300)
    ]
    assert tick(15, knows_resize) == []  # still unclaimable: no repeat
    assert run.state(task="images.resize") is AlertState.OK
    # A worker of the old version comes back: the jobs are claimable again.
    knows_thumbs = WorkerSeen("old", ("*",), since, tasks=("images.thumbnail",))
    resolved = tick(15, knows_resize, knows_thumbs)
    assert [(e.state, dict(e.labels)) for e in resolved] == [
        (AlertState.RESOLVED, {"task": "images.thumbnail"})
    ]
    assert [e.state for e in run.events] == [AlertState.FIRING, AlertState.RESOLVED]


def test_unclaimable_task_ignores_stale_workers_and_tasks_with_nothing_due() -> None:
    now = FakeClock().now()
    rule = AlertRule("unknown", AlertKind.UNCLAIMABLE_TASK, max_wait=60, worker_timeout=60)
    old = now - timedelta(minutes=10)
    counts = [
        TaskCounts(queue="q", task="due", pending=1, waiting_since=old),
        TaskCounts(queue="q", task="later", scheduled=4),  # nothing due yet
        TaskCounts(queue="q", task="busy", running=2),
    ]
    stale = WorkerSeen("w", ("*",), now - timedelta(seconds=61), tasks=("due",))
    found = {dict(r.labels)["task"]: (r.active, r.value) for r in readings(rule, Observation(tasks=counts, workers=[stale]), now)}
    assert found == {"due": (True, 600.0), "later": (False, 0.0), "busy": (False, 0.0)}
    one = readings(replace(rule, task="absent"), Observation(tasks=counts), now)
    assert [(dict(r.labels), r.active) for r in one] == [({"task": "absent"}, False)]


def test_task_coverage_sums_queues_and_names_live_workers() -> None:
    now = FakeClock().now()
    counts = [
        TaskCounts(queue="a", task="t", pending=1, waiting_since=now - timedelta(seconds=9)),
        TaskCounts(queue="b", task="t", pending=2, scheduled=1, waiting_since=now - timedelta(seconds=30)),
    ]
    workers = [
        WorkerSeen("w2", ("*",), now, tasks=("t", "u")),
        WorkerSeen("w1", ("*",), now, tasks=("u",)),
        WorkerSeen("gone", ("*",), now - timedelta(minutes=5), tasks=("t", "v")),
    ]
    coverage = task_coverage(counts, workers, now=now)
    assert coverage == [
        TaskCoverage(task="t", pending=3, scheduled=1, waiting_since=now - timedelta(seconds=30),
                     queues=("a", "b"), workers=("w2",)),
        TaskCoverage(task="u", workers=("w1", "w2")),
    ]
    assert not coverage[0].is_unclaimable and coverage[0].waited(now) == 30.0
    alone = task_coverage(counts, workers[2:], now=now)
    assert [(c.task, c.is_unclaimable) for c in alone] == [("t", True)]


# -- rules: parsing and validation ----------------------------------------------------------
def test_parse_rule_accepts_for_and_the_kind_parameters() -> None:
    rule = parse_rule({"name": "pay", "kind": "failure_rate", "queue": "payments", "threshold": 25, "for": 120})
    assert (rule.kind, rule.for_seconds, rule.window, rule.min_outcomes) == (AlertKind.FAILURE_RATE, 120, 300.0, 10)
    assert rule.to_json() == {
        "name": "pay", "kind": "failure_rate", "for_seconds": 120, "queue": "payments",
        "threshold": 25, "window": 300.0, "min_outcomes": 10,
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"name": "a", "kind": "queue_dept", "threshold": 1}, "rule 'a': unknown kind 'queue_dept'; did you mean 'queue_depth'?"),
        ({"name": "a", "kind": "queue_depth", "threshold": -1}, "rule 'a': threshold must be >= 0 (got -1)"),
        ({"name": "a", "kind": "queue_depth"}, "rule 'a': queue_depth needs a threshold"),
        ({"name": "a", "kind": "failure_rate", "threshold": 101}, "rule 'a': threshold is a percentage and must be between 0 and 100 (got 101)"),
        ({"name": "a", "kind": "failure_rate", "threshold": 5, "window": 0}, "rule 'a': window must be > 0 seconds"),
        ({"name": "a", "kind": "failure_rate", "threshold": 5, "min_outcomes": 0}, "rule 'a': min_outcomes must be an integer >= 1 (got 0)"),
        ({"name": "a", "kind": "queue_depth", "threshold": 1, "for": -5}, "rule 'a': for_seconds must be >= 0 (got -5)"),
        ({"name": "a", "kind": "queue_depth", "threshold": 1, "windw": 5}, "rule 'a': queue_depth has no parameter 'windw'"),
        ({"name": "a", "kind": "service_error", "grace": 5}, "rule 'a': service_error has no parameter 'grace'"),
        ({"name": "a", "kind": "no_worker", "for": 1, "for_seconds": 1}, "rule 'a': give either for or for_seconds, not both"),
        ({"kind": "no_worker"}, "alert rule: name must be a non-empty string (got None)"),
        ({"name": "a"}, "rule 'a': kind is missing"),
    ],
)
def test_bad_rules_name_the_rule(table: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rule(table)
    assert str(info.value).startswith(message)


def test_app_alert_registers_rules_and_refuses_duplicates() -> None:
    app = Taskyard("memory://")
    rule = app.alert("pay", kind="failure_rate", queue="payments", threshold=50, for_seconds=60)
    assert app.alert_rules == [rule] and rule.for_seconds == 60
    with pytest.raises(ValueError, match="'pay' is already declared"):
        app.alert("pay", kind="queue_depth", threshold=1)
    with pytest.raises(ValueError, match="rule 'bad': threshold must be >= 0"):
        app.alert("bad", kind="queue_depth", threshold=-3)


# -- [alerts] settings ----------------------------------------------------------------------

def test_alerts_settings_from_toml(clean_env: Path) -> None:
    (clean_env / "taskyard.toml").write_text(
        '[alerts]\ninterval = 30\n'
        '[[alerts.rules]]\nname = "pay"\nkind = "failure_rate"\nqueue = "payments"\nthreshold = 20\nfor = 60\n'
        '[alerts.notifiers.webhook]\nurl = "https://hooks.example.com/T0/abc"\nheaders = { Authorization = "Bearer s3cret" }\n'
        '[alerts.notifiers.email]\nhost = "smtp.example.com"\nport = 587\nfrom = "taskyard@example.com"\n'
        'to = ["ops@example.com"]\nstarttls = true\nusername = "taskyard"\npassword = "hunter2"\n'
    )
    alerts = load_settings().alerts
    assert alerts.interval == 30 and alerts.enabled is None
    assert [(r.name, r.kind, r.for_seconds) for r in alerts.alert_rules()] == [("pay", AlertKind.FAILURE_RATE, 60)]
    email = alerts.notifiers.email
    assert email is not None and email.sender == "taskyard@example.com" and email.port == 587
    assert "hunter2" not in repr(alerts) and "s3cret" not in repr(alerts)


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"rules": [{"name": "pay", "kind": "failure_rate", "threshold": 150}]},
         "invalid setting 'alerts.rules' [TASKYARD_ALERTS__RULES]: rule 'pay': threshold is a percentage"),
        ({"rules": [{"name": "x", "kind": "nope"}]},
         "invalid setting 'alerts.rules' [TASKYARD_ALERTS__RULES]: rule 'x': unknown kind 'nope'"),
        ({"rules": [{"kind": "no_worker"}]},
         "invalid setting 'alerts.rules' [TASKYARD_ALERTS__RULES]: rule #1: name must be"),
        ({"rules": [{"name": "x", "kind": "no_worker"}, {"name": "x", "kind": "service_error"}]},
         "invalid setting 'alerts.rules' [TASKYARD_ALERTS__RULES]: rule 'x' is declared twice"),
        ({"interval": 0},
         "invalid setting 'alerts.interval' [TASKYARD_ALERTS__INTERVAL]: Input should be greater than 0"),
        ({"notifiers": {"webhook": {"url": "ftp://example.com/hook"}}},
         "invalid setting 'alerts.notifiers.webhook.url' [TASKYARD_ALERTS__NOTIFIERS__WEBHOOK__URL]: must be an http:// or https:// URL"),
        ({"notifiers": {"webhook": {"url": "https://example.com", "retries": -1}}},
         "invalid setting 'alerts.notifiers.webhook.retries'"),
        ({"notifiers": {"email": {"host": "h", "from": "a@b.c", "to": ["nobody"]}}},
         "invalid setting 'alerts.notifiers.email.to' [TASKYARD_ALERTS__NOTIFIERS__EMAIL__TO]: 'nobody' is not an e-mail address"),
        ({"notifiers": {"email": {"host": "h", "from": "a@b.c", "to": "x@y.z", "username": "u"}}},
         "invalid setting 'alerts.notifiers.email' [TASKYARD_ALERTS__NOTIFIERS__EMAIL]: username and password go together"),
        ({"notifiers": {"email": {"host": "h", "form": "a@b.c", "to": "x@y.z"}}},
         "invalid setting 'alerts.notifiers.email.from'"),
        ({"notifiers": {"pager": {}}}, "unknown setting 'alerts.notifiers.pager'"),
    ],
)
def test_bad_alerts_settings_are_one_line_naming_the_setting(clean_env: Path, alerts: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(alerts=alerts)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_smtp_password_is_never_echoed_in_an_error(clean_env: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(alerts={"notifiers": {"email": {
            "host": "h", "from": "a@b.c", "to": "x@y.z", "username": "u", "password": 12345678,
        }}})
    assert "12345678" not in str(info.value) and "alerts.notifiers.email.password" in str(info.value)
