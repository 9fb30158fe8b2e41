"""One name rule (core/names.py) wherever a name enters: the Python API, configuration and
the worker take exactly the names the HTTP API takes."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from taskyard import InvalidNameError, ScheduleError, Taskyard
from taskyard.config import WorkerSettings
from taskyard.core.names import NAME_ALLOWED, NAME_PATTERN, check_name, is_name
from taskyard.http.api import schemas
from taskyard.services.worker.worker import WorkerConfig

BAD = ["<script>alert(1)</script>", "has space", "a/b", "", "x" * 201, "é", "a\nb"]
GOOD = ["default", "emails.send", "set:nightly:eu", "user@example.com", "a+b-c_d", "x" * 200]


@pytest.fixture
def app() -> Taskyard:
    app = Taskyard("memory://")

    @app.task("ok")
    async def ok() -> None: ...

    return app


def test_the_http_schemas_use_the_core_rule() -> None:
    assert schemas.NAME_PATTERN is NAME_PATTERN
    for name in GOOD:
        assert is_name(name) and re.fullmatch(NAME_PATTERN, name)
    for name in BAD:
        assert not is_name(name)


def test_check_name_names_kind_value_and_allowed_characters() -> None:
    assert check_name("queue name", "default") == "default"
    with pytest.raises(InvalidNameError) as err:
        check_name("queue name", "<b>")
    assert str(err.value) == f"queue name '<b>' may contain only {NAME_ALLOWED}"
    assert (err.value.kind, err.value.value) == ("queue name", "<b>")
    assert isinstance(err.value, ValueError)
    with pytest.raises(InvalidNameError, match="must not be empty"):
        check_name("task name", "")
    with pytest.raises(InvalidNameError, match="201 characters long; the limit is 200"):
        check_name("task name", "x" * 201)
    with pytest.raises(InvalidNameError, match="must be a string, not int"):
        check_name("task name", 7)


@pytest.mark.parametrize("bad", BAD)
def test_registration_refuses_bad_names(app: Taskyard, bad: str) -> None:
    with pytest.raises(InvalidNameError, match="task name"):
        app.task(bad)
    with pytest.raises(InvalidNameError, match="queue name"):
        app.task("fine", queue=bad)
    with pytest.raises(InvalidNameError, match="queue name"):
        app.queue(bad, concurrency=1)
    with pytest.raises(InvalidNameError, match="service id"):
        app.service(bad)
    assert "fine" not in app.tasks and app.queue_specs == {} and app.service_specs == {}


def test_enqueue_and_queue_actions_refuse_bad_queue_names(app: Taskyard) -> None:
    for bad in BAD:
        with pytest.raises(InvalidNameError, match="queue name"):
            app.enqueue("ok", None, queue=bad)
        with pytest.raises(InvalidNameError, match="queue name"):
            app.enqueue_many([{"task": "ok", "queue": bad}])
    with pytest.raises(InvalidNameError, match="queue name"):
        app.pause_queue("<b>")
    assert app.counts() == {}
    assert app.enqueue("ok", None, queue="user@example.com").queue == "user@example.com"
    app.close()


def test_schedules_refuse_bad_names(app: Taskyard) -> None:
    for bad in BAD:
        with pytest.raises(ScheduleError, match="schedule name"):
            app.schedules.add(bad, task="ok", every=60)
        with pytest.raises(ScheduleError, match="queue name"):
            app.schedules.add("s", task="ok", every=60, queue=bad)
        with pytest.raises(ScheduleError, match="owner"):
            app.schedules.add("s", task="ok", every=60, owner=bad)
        with pytest.raises(ScheduleError, match="schedule name"):
            app.schedule(bad, task="ok", every=60)
        with pytest.raises(ScheduleError, match="schedule set name"):
            app.schedules.define_set(bad, [{"key": "k", "task": "ok", "every": 60}])
        with pytest.raises(ScheduleError, match="template key"):
            app.schedules.define_set("set", [{"key": bad, "task": "ok", "every": 60}])
    app.schedules.define_set("set", [{"key": "k", "task": "ok", "every": 60}])
    with pytest.raises(ScheduleError, match="owner"):
        app.schedules.apply_set("set", owner="a b")
    # The names a set builds (`set:<name>:<key>` when defined, `<owner>:<key>` when applied)
    # follow the rule, and their length is checked too.
    assert [s.name for s in app.schedules.apply_set("set", owner="user@example.com")] == ["user@example.com:k"]
    with pytest.raises(ScheduleError, match="the limit is 200"):
        app.schedules.apply_set("set", owner="o" * 199)
    assert app.schedules.list() != [] and app.schedules.declared == {}
    app.close()


def test_worker_queues_follow_the_rule() -> None:
    assert WorkerSettings(queues="a, b.c").queues == ["a", "b.c"]
    with pytest.raises(ValidationError, match="queue name '<b>' may contain only"):
        WorkerSettings(queues="a,<b>")
    with pytest.raises(ValidationError, match="must not be empty"):
        WorkerSettings(queues="a,,b")
    with pytest.raises(InvalidNameError, match="worker queue name"):
        WorkerConfig(queues=("a b",))


def test_alert_rules_follow_the_rule(app: Taskyard) -> None:
    with pytest.raises(ValueError, match=r"rule 'r': queue name 'a b' may contain only"):
        app.alert("r", kind="queue_depth", queue="a b", threshold=10)
    assert app.alert("r", kind="queue_depth", queue="emails.send", threshold=10).queue == "emails.send"
