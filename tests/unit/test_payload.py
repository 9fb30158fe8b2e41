"""Payload limits (core/payload.py): depth and size are checked before anything is stored, on
every entry path of the Python API, and what listings show of a deeper row is bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskyard import JobStatus, PayloadError, Taskyard
from taskyard.core.payload import (
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_DEPTH,
    TOO_DEEP,
    bounded,
    check_payload,
    decode_stored,
    encode_value,
    json_depth,
)
from taskyard.http.api.schemas import JobOut, ScheduleOut
from taskyard.http.dashboard.render import pretty
from taskyard.testing import drain


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


@pytest.fixture
def app() -> Taskyard:
    app = Taskyard("memory://")

    @app.task("echo")
    async def echo(payload: Any) -> Any:
        return payload

    @app.task("deepen")
    async def deepen(payload: dict) -> Any:
        return nested(payload["depth"])

    return app


def test_depth_counts_objects_and_arrays() -> None:
    assert [json_depth(v) for v in (1, "x", None, [], {}, [1, {"a": [2]}])] == [0, 0, 0, 1, 1, 3]
    assert json_depth(nested(MAX_PAYLOAD_DEPTH)) == MAX_PAYLOAD_DEPTH
    assert json_depth(nested(5000)) == MAX_PAYLOAD_DEPTH + 1  # stops counting past the limit
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert json_depth(cyclic) == MAX_PAYLOAD_DEPTH + 1


def test_encode_value_names_the_limits() -> None:
    assert encode_value(nested(MAX_PAYLOAD_DEPTH)) == json.dumps(nested(MAX_PAYLOAD_DEPTH)).replace(" ", "").encode()
    with pytest.raises(ValueError, match=rf"payload is nested more than {MAX_PAYLOAD_DEPTH} levels deep"):
        encode_value(nested(MAX_PAYLOAD_DEPTH + 1))
    with pytest.raises(ValueError, match=rf"result is \d+ bytes; the limit is {MAX_PAYLOAD_BYTES}"):
        encode_value("x" * MAX_PAYLOAD_BYTES, what="result")
    with pytest.raises(ValueError, match="not JSON"):
        encode_value(float("nan"))
    with pytest.raises(PayloadError, match=r"invalid payload for task 't'.*levels deep") as err:
        check_payload("t", nested(300))
    assert err.value.task == "t"


def test_bounded_cuts_below_the_limit_only() -> None:
    shallow = nested(MAX_PAYLOAD_DEPTH)
    assert bounded(shallow) is shallow
    cut = bounded(nested(1000))
    assert json_depth(cut) == MAX_PAYLOAD_DEPTH and TOO_DEEP in json.dumps(cut, ensure_ascii=False)
    assert bounded({"ok": 1, "deep": nested(100)})["ok"] == 1


def test_decode_stored_reads_a_row_too_deep_for_the_parser() -> None:
    assert decode_stored('{"a":[1]}') == {"a": [1]}
    assert decode_stored("[" * 5000 + "]" * 5000) == TOO_DEEP


def test_enqueue_paths_refuse_deep_payloads_and_store_nothing(app: Taskyard) -> None:
    with pytest.raises(PayloadError, match=f"limit is {MAX_PAYLOAD_DEPTH} levels"):
        app.enqueue("echo", nested(300))
    with pytest.raises(PayloadError, match="levels deep"):
        app.enqueue_many([("echo", {"fine": 1}), ("echo", nested(MAX_PAYLOAD_DEPTH + 1))])
    with pytest.raises(PayloadError, match="bytes; the limit"):
        app.enqueue("echo", "x" * (MAX_PAYLOAD_BYTES + 1))
    assert app.counts() == {}
    assert app.enqueue("echo", nested(MAX_PAYLOAD_DEPTH)).payload == nested(MAX_PAYLOAD_DEPTH)
    app.close()


def test_schedule_paths_refuse_deep_payloads_and_store_nothing(app: Taskyard) -> None:
    with pytest.raises(PayloadError, match="schedule payload is nested"):
        app.schedules.add("deep", task="echo", every=60, payload=nested(300))
    with pytest.raises(PayloadError, match="schedule payload is nested"):
        # Declared for a task another app registers: the depth is still checked now.
        app.schedule("elsewhere", task="not.here", every=60, payload=nested(300))
    app.schedules.define_set("per-user", [{"key": "ping", "task": "echo", "every": 60}])
    with pytest.raises(PayloadError, match="levels deep"):
        app.schedules.apply_set("per-user", owner="u1", payload={"x": nested(300)})
    assert app.schedules.list() == [] and app.schedules.declared == {}
    app.close()


async def test_a_too_deep_result_fails_the_job_with_the_limit(app: Taskyard) -> None:
    ok = await app.aenqueue("deepen", {"depth": MAX_PAYLOAD_DEPTH})
    deep = await app.aenqueue("deepen", {"depth": 300})
    await drain(app)
    ok, deep = await app.aget_job(ok.id), await app.aget_job(deep.id)
    assert ok.status is JobStatus.COMPLETED and json_depth(ok.result) == MAX_PAYLOAD_DEPTH
    assert deep.status is JobStatus.FAILED and deep.result is None and len(deep.errors) == 1
    assert "cannot be stored" in deep.errors[0].message and f"limit is {MAX_PAYLOAD_DEPTH}" in deep.errors[0].message
    page = await app.alist_jobs()
    assert all(JobOut.of(j).model_dump_json() for j in page.jobs)


async def test_api_and_dashboard_show_a_deep_stored_value_as_a_marker(app: Taskyard) -> None:
    # A row written around the check (an older version, a direct write).
    job = (await app.aenqueue("echo", None)).replace(payload=nested(1000), result=nested(400))
    out = json.loads(JobOut.of(job).model_dump_json())
    for key in ("payload", "result"):
        assert TOO_DEEP in json.dumps(out[key], ensure_ascii=False)
    assert TOO_DEEP in pretty(job.payload)
    schedule = app.schedules.build("s", task="echo", every=60).replace(payload=nested(1000))
    assert TOO_DEEP in ScheduleOut.of(schedule).model_dump_json()
