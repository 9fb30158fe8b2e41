"""Workflows on every backend: atomic enqueue, ordering, fan-in, failure policies,
cancellation and retry-resume — each rule of `core.workflow` carried out inside the write that
finishes, cancels or retries a step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from taskyard.backends.protocol import Backend
from taskyard.core.ids import new_id, new_id_after
from taskyard.core.job import Job, JobDraft, JobStatus
from taskyard.core.settle import Settle
from taskyard.core.workflow import (
    Edge,
    EdgeState,
    Policy,
    WorkflowDraft,
    WorkflowStatus,
    map_step_name,
)
from taskyard.errors import InvalidTransitionError, WorkflowNotFound

from .factory import LEASE, T0, at, error, settle

S = JobStatus
W = WorkflowStatus


class Graph:
    """A workflow draft built step by step: `add(name, after={parent: policy})`."""

    def __init__(self, name: str = "wf", *, queue: str = "default", seq: int = 0) -> None:
        self.id = new_id(int(T0.timestamp() * 1000) + seq)
        self.name = name
        self.queue = queue
        self.steps: list[JobDraft] = []
        self.edges: list[Edge] = []
        self.ids: dict[str, str] = {}

    def add(self, step: str, *, after: dict[str, Policy] | None = None, queue: str | None = None, **fields: Any) -> str:
        job_id = new_id(int(T0.timestamp() * 1000) + len(self.steps))
        self.steps.append(JobDraft(
            id=job_id, task=f"t.{step.split('[')[0]}", queue=queue or self.queue, payload={"step": step},
            workflow_id=self.id, step=step, **fields,
        ))
        self.ids[step] = job_id
        for parent, policy in (after or {}).items():
            self.edges.append(Edge(self.ids[parent], job_id, policy))
        return job_id

    def draft(self) -> WorkflowDraft:
        return WorkflowDraft(self.id, self.name, tuple(self.steps), tuple(self.edges))


def fail_all(*parents: str) -> dict[str, Policy]:
    return dict.fromkeys(parents, Policy.FAIL)


async def statuses(backend: Backend, g: Graph) -> dict[str, JobStatus]:
    wf = await backend.workflow_get(workflow_id=g.id)
    assert wf is not None
    return {j.step or "": j.status for j in wf.steps}


async def claim_all(backend: Backend, *, now: datetime = T0, limit: int = 1000) -> list[Job]:
    return await backend.job_claim(queues=None, limit=limit, worker_id="w1", lease=LEASE, now=now)


async def claim_step(backend: Backend, g: Graph, step: str, *, now: datetime = T0) -> Job:
    """Claim every due job and return the one of `step` (the others are released)."""
    jobs = await claim_all(backend, now=now)
    wanted = [j for j in jobs if j.id == g.ids[step]]
    others = [Settle.released(j.id, j.lease_token or "") for j in jobs if j.id != g.ids[step]]
    if others:
        await backend.jobs_settle(outcomes=others, now=now)
    assert wanted, f"step {step!r} was not claimable; claimed {[j.step for j in jobs]}"
    return wanted[0]


async def finish(backend: Backend, g: Graph, step: str, *, ok: bool = True, now: datetime = T0) -> Job:
    job = await claim_step(backend, g, step, now=now)
    token = job.lease_token or ""
    outcome = Settle.completed(job.id, token, {"from": step}) if ok else Settle.failed(job.id, token, error(now=now), None)
    answer = await settle(backend, outcome, now=now)
    assert answer.owned
    got = await backend.job_get(job_id=job.id)
    assert got is not None
    return got


async def test_enqueue_stores_steps_blocked_until_their_parents_are_done(backend: Backend) -> None:
    g = Graph("onboard")
    g.add("a", meta={"traceparent": "00-abc-def-01"})
    g.add("b", after=fail_all("a"))
    wf = await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    assert wf.id == g.id and wf.name == "onboard" and wf.status is W.RUNNING
    assert [(j.step, j.status) for j in wf.steps] == [("a", S.PENDING), ("b", S.BLOCKED)]
    assert all(j.workflow_id == g.id for j in wf.steps)
    assert wf.steps[0].meta == {"traceparent": "00-abc-def-01"}
    assert [(e.parent, e.child, e.policy, e.state) for e in wf.edges] == [
        (g.ids["a"], g.ids["b"], Policy.FAIL, EdgeState.OPEN)
    ]
    # Only the root is claimable; the blocked step is counted as such.
    claimed = await claim_all(backend)
    assert [j.step for j in claimed] == ["a"]
    counts = {c.queue: c for c in await backend.queue_counts()}
    assert counts["default"].get(S.BLOCKED) == 1


async def test_enqueue_again_returns_the_stored_workflow_unchanged(backend: Backend) -> None:
    g = Graph()
    g.add("a")
    g.add("b", after=fail_all("a"))
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    await finish(backend, g, "a")
    again = await backend.workflow_enqueue(workflow=g.draft(), now=at(5))
    assert {j.step: j.status for j in again.steps} == {"a": S.COMPLETED, "b": S.PENDING}
    page = await backend.workflows_list()
    assert [w.id for w in page.workflows] == [g.id]


async def test_a_chain_runs_in_order_and_completes(backend: Backend) -> None:
    g = Graph()
    g.add("a")
    g.add("b", after=fail_all("a"))
    g.add("c", after=fail_all("b"))
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    for step in ("a", "b", "c"):
        done = await finish(backend, g, step, now=at(1))
        assert done.status is S.COMPLETED and done.result == {"from": step}
    wf = await backend.workflow_get(workflow_id=g.id)
    assert wf is not None and wf.status is W.COMPLETED and wf.finished_at == at(1)


async def test_a_step_waits_for_every_parent(backend: Backend) -> None:
    g = Graph()
    g.add("a")
    g.add("b")
    g.add("join", after=fail_all("a", "b"))
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    await finish(backend, g, "a")
    assert (await statuses(backend, g))["join"] is S.BLOCKED
    await finish(backend, g, "b", now=at(3))
    got = await backend.job_get(job_id=g.ids["join"])
    assert got is not None and got.status is S.PENDING and got.run_at == at(3)


async def test_fan_in_of_a_thousand_mapped_steps(backend: Backend) -> None:
    g = Graph("fan")
    g.add("start")
    for i in range(1000):
        g.add(map_step_name("fetch", i), after=fail_all("start"))
    g.add("report", after=fail_all(*(map_step_name("fetch", i) for i in range(1000))))
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    await finish(backend, g, "start")
    children = await claim_all(backend, limit=1000)
    assert len(children) == 1000 and {j.step for j in children} == {map_step_name("fetch", i) for i in range(1000)}
    for chunk in range(0, 1000, 100):
        batch = children[chunk : chunk + 100]
        answers = await backend.jobs_settle(
            outcomes=[Settle.completed(j.id, j.lease_token or "", {"i": j.step}) for j in batch], now=at(2)
        )
        assert all(a.owned for a in answers)
        report = await backend.job_get(job_id=g.ids["report"])
        assert report is not None
        assert report.status is (S.PENDING if chunk == 900 else S.BLOCKED)
    wf = await backend.workflow_get(workflow_id=g.id)
    assert wf is not None
    fetched = wf.step("fetch")
    assert [j.step for j in fetched] == [map_step_name("fetch", i) for i in range(1000)]
    assert len(wf.parents(g.ids["report"])) == 1000
    await finish(backend, g, "report", now=at(3))
    wf = await backend.workflow_get(workflow_id=g.id)
    assert wf is not None and wf.status is W.COMPLETED


async def test_fail_policy_cancels_dependents_down_the_graph(backend: Backend) -> None:
    g = Graph()
    g.add("a")
    g.add("side")
    g.add("b", after=fail_all("a"))
    g.add("c", after=fail_all("b"))
    g.add("tail", after={"c": Policy.CONTINUE})
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    failed = await finish(backend, g, "a", ok=False, now=at(1))
    assert failed.status is S.FAILED
    st = await statuses(backend, g)
    assert st == {"a": S.FAILED, "side": S.PENDING, "b": S.CANCELLED, "c": S.CANCELLED, "tail": S.PENDING}
    b = await backend.job_get(job_id=g.ids["b"])
    assert b is not None and b.finished_at == at(1)
    await finish(backend, g, "side")
    await finish(backend, g, "tail")
    wf = await backend.workflow_get(workflow_id=g.id)
    assert wf is not None and wf.status is W.FAILED
    assert {(e.parent, e.state) for e in wf.edges if e.child == g.ids["b"]} == {(g.ids["a"], EdgeState.FAILED)}


async def test_a_retried_attempt_is_not_a_failure(backend: Backend) -> None:
    g = Graph()
    g.add("a", max_attempts=2)
    g.add("b", after=fail_all("a"))
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    job = await claim_step(backend, g, "a")
    await settle(backend, Settle.failed(job.id, job.lease_token or "", error(), at(1)))
    assert await statuses(backend, g) == {"a": S.SCHEDULED, "b": S.BLOCKED}
    await finish(backend, g, "a", now=at(2))
    assert (await statuses(backend, g))["b"] is S.PENDING


@pytest.mark.parametrize(("policy", "outcome"), [(Policy.CONTINUE, W.FAILED), (Policy.IGNORE, W.COMPLETED)])
async def test_continue_and_ignore_run_the_child_after_a_failure(
    backend: Backend, policy: Policy, outcome: WorkflowStatus
) -> None:
    g = Graph()
    g.add("a")
    g.add("b")
    g.add("summary", after={"a": policy, "b": policy})
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    await finish(backend, g, "a", ok=False)
    assert (await statuses(backend, g))["summary"] is S.BLOCKED
    await finish(backend, g, "b")
    await finish(backend, g, "summary")
    wf = await backend.workflow_get(workflow_id=g.id)
    assert wf is not None and wf.status is outcome


async def test_cancelling_a_pending_step_applies_the_policy(backend: Backend) -> None:
    g = Graph()
    g.add("a")
    g.add("b", after=fail_all("a"))
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    await backend.job_cancel(job_id=g.ids["a"], now=at(1))
    assert await statuses(backend, g) == {"a": S.CANCELLED, "b": S.CANCELLED}


async def test_a_lost_worker_past_max_rescues_fails_the_step_and_cancels_dependents(backend: Backend) -> None:
    g = Graph()
    g.add("a", max_rescues=0)
    g.add("b", after=fail_all("a"))
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    await claim_step(backend, g, "a")
    report = await backend.jobs_rescue_expired(now=at(LEASE + 1))
    assert report.failed == (g.ids["a"],)
    assert await statuses(backend, g) == {"a": S.FAILED, "b": S.CANCELLED}


async def test_workflow_cancel_stops_everything_not_finished(backend: Backend) -> None:
    g = Graph()
    g.add("a")
    g.add("b")
    g.add("c", after=fail_all("a", "b"))
    g.add("d")
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    await finish(backend, g, "d")
    running = await claim_step(backend, g, "a")
    wf = await backend.workflow_cancel(workflow_id=g.id, now=at(2))
    assert wf.header.cancelled_at == at(2)
    st = {j.step: j for j in wf.steps}
    assert st["a"].status is S.RUNNING and st["a"].cancel_requested
    assert (st["b"].status, st["c"].status, st["d"].status) == (S.CANCELLED, S.CANCELLED, S.COMPLETED)
    assert wf.status is W.RUNNING  # its running step has not stopped yet
    await settle(backend, Settle.cancelled(running.id, running.lease_token or "", "workflow cancelled"), now=at(3))
    wf2 = await backend.workflow_get(workflow_id=g.id)
    assert wf2 is not None and wf2.status is W.CANCELLED and wf2.finished_at == at(3)
    with pytest.raises(WorkflowNotFound):
        await backend.workflow_cancel(workflow_id=new_id(), now=at(4))


async def test_retrying_the_failed_step_resumes_the_workflow(backend: Backend) -> None:
    g = Graph()
    g.add("a")
    g.add("b", after=fail_all("a"))
    g.add("c", after=fail_all("b"))
    g.add("x")
    g.add("y", after=fail_all("x", "b"))
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    await finish(backend, g, "a", ok=False)
    assert (await statuses(backend, g))["y"] is S.CANCELLED
    with pytest.raises(InvalidTransitionError, match="retry that step"):
        await backend.job_retry(job_id=g.ids["b"], now=at(1))
    await finish(backend, g, "x")
    retried = await backend.job_retry(job_id=g.ids["a"], now=at(2))
    assert retried.status is S.PENDING and retried.attempt == 0
    st = await statuses(backend, g)
    assert st == {"a": S.PENDING, "b": S.BLOCKED, "c": S.BLOCKED, "x": S.COMPLETED, "y": S.BLOCKED}
    for step in ("a", "b", "c", "y"):
        await finish(backend, g, step, now=at(3))
    wf = await backend.workflow_get(workflow_id=g.id)
    assert wf is not None and wf.status is W.COMPLETED
    b = next(j for j in wf.steps if j.step == "b")
    assert b.result == {"from": "b"} and b.finished_at == at(3)


async def test_workflow_retry_resumes_after_failure_and_after_cancel(backend: Backend) -> None:
    g = Graph()
    g.add("a")
    g.add("b", after=fail_all("a"))
    g.add("c")
    g.add("d", after=fail_all("c"))
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    await finish(backend, g, "a", ok=False)
    await backend.workflow_cancel(workflow_id=g.id, now=at(1))
    wf = await backend.workflow_get(workflow_id=g.id)
    assert wf is not None and wf.status is W.CANCELLED
    resumed = await backend.workflow_retry(workflow_id=g.id, now=at(2))
    assert resumed.header.cancelled_at is None and resumed.status is W.RUNNING
    assert {j.step: j.status for j in resumed.steps} == {
        "a": S.PENDING, "b": S.BLOCKED, "c": S.PENDING, "d": S.BLOCKED,
    }
    for step in ("a", "c", "b", "d"):
        await finish(backend, g, step, now=at(3))
    wf = await backend.workflow_get(workflow_id=g.id)
    assert wf is not None and wf.status is W.COMPLETED
    with pytest.raises(WorkflowNotFound):
        await backend.workflow_retry(workflow_id=new_id(), now=at(4))


async def test_steps_in_several_queues(backend: Backend, backend_kind: str) -> None:
    if backend_kind == "redis-cluster":
        pytest.skip("on Redis Cluster a workflow's steps share one queue (see docs/workflows.md)")
    g = Graph()
    g.add("a", queue="left")
    g.add("b", queue="right", after=fail_all("a"))
    await backend.workflow_enqueue(workflow=g.draft(), now=T0)
    await finish(backend, g, "a")
    claimed = await backend.job_claim(queues=["right"], limit=5, worker_id="w", lease=LEASE, now=at(1))
    assert [j.step for j in claimed] == ["b"]


async def test_listing_pages_newest_first(backend: Backend) -> None:
    graphs = []
    for i in range(5):
        g = Graph(f"wf{i}", seq=i * 10)
        g.add("only")
        await backend.workflow_enqueue(workflow=g.draft(), now=T0)
        graphs.append(g)
    first = await backend.workflows_list(limit=3)
    assert [w.name for w in first.workflows] == ["wf4", "wf3", "wf2"] and first.next_cursor
    second = await backend.workflows_list(limit=3, cursor=first.next_cursor)
    assert [w.name for w in second.workflows] == ["wf1", "wf0"] and second.next_cursor is None
    assert await backend.workflow_get(workflow_id=new_id()) is None


def test_drafts_are_validated() -> None:
    g = Graph()
    g.add("a")
    g.add("a")
    with pytest.raises(ValueError, match="two steps named"):
        g.draft()
    g = Graph()
    g.add("a", unique_key="k")
    with pytest.raises(ValueError, match="unique key"):
        g.draft()
    g = Graph()
    g.add("a")
    g.add("b", after=fail_all("a"), run_at=at(5))
    with pytest.raises(ValueError, match="has parents"):
        g.draft()
    g = Graph()
    g.add("no spaces")
    with pytest.raises(ValueError, match="bad step name"):
        g.draft()


async def test_steps_come_back_in_step_order_when_made_in_one_millisecond(backend: Backend) -> None:
    """Step ids made in a row with `new_id_after` sort in step order even within one
    millisecond, and every store reads a workflow's steps in that order."""
    wf_id = new_id()
    ids: list[str] = []
    for _ in range(50):
        ids.append(new_id_after(ids[-1] if ids else None))
    steps = tuple(
        JobDraft(id=i, task="t.x", queue="default", payload=None, workflow_id=wf_id, step=f"s{n}")
        for n, i in enumerate(ids)
    )
    stored = await backend.workflow_enqueue(workflow=WorkflowDraft(wf_id, "order", steps), now=T0)
    assert [j.step for j in stored.steps] == [f"s{n}" for n in range(50)]
    with pytest.raises(ValueError, match="sort in step order"):
        WorkflowDraft(wf_id, "bad", (steps[1], steps[0]))


async def test_finished_workflows_are_pruned_whole_and_their_steps_only_with_them(backend: Backend) -> None:
    done = Graph("done", seq=0)
    done.add("a")
    done.add("b", after=fail_all("a"))
    running = Graph("running", seq=10)
    running.add("a")
    running.add("b", after=fail_all("a"))
    await backend.workflow_enqueue(workflow=done.draft(), now=T0)
    await backend.workflow_enqueue(workflow=running.draft(), now=T0)
    await finish(backend, done, "a", now=at(1))
    await finish(backend, done, "b", now=at(2))
    await finish(backend, running, "a", now=at(2))
    # Steps are never pruned or deleted as jobs: a running workflow's children read them.
    assert await backend.jobs_prune(status=S.COMPLETED, keep_last=0) == 0
    assert await backend.jobs_delete(ids=[done.ids["a"], running.ids["a"]]) == []
    # Only workflows with nothing left to run, finished before the cut.
    assert await backend.workflows_prune(finished_before=at(2)) == 0
    assert await backend.workflows_prune(finished_before=at(3)) == 1
    assert await backend.workflow_get(workflow_id=done.id) is None
    assert await backend.job_get(job_id=done.ids["a"]) is None and await backend.job_get(job_id=done.ids["b"]) is None
    kept = await backend.workflow_get(workflow_id=running.id)
    assert kept is not None and [j.step for j in kept.steps] == ["a", "b"] and len(kept.edges) == 1
    assert [w.id for w in (await backend.workflows_list()).workflows] == [running.id]
    await finish(backend, running, "b", now=at(4))
    assert await backend.workflows_prune(finished_before=at(5), limit=1) == 1
    assert list((await backend.workflows_list()).workflows) == []
