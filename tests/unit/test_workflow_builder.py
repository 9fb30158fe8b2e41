"""`app.workflow(...)`: steps and fan-outs checked as they are added (names, parents, policies,
payloads, options), the draft's edges, and the atomic, idempotent enqueue on memory://."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from taskyard import (
    ConfigError,
    InvalidNameError,
    JobStatus,
    PayloadError,
    Policy,
    Taskyard,
    UnknownTaskError,
    WorkflowNotFound,
)
from taskyard.workflow import AFTER_META


class Page(BaseModel):
    url: str


def make_app() -> Taskyard:
    app = Taskyard("memory://")

    @app.task("crawl", queue="web", timeout=30)
    async def crawl(page: Page) -> int:
        return len(page.url)

    @app.task("mail@eu")
    async def mail(payload: None) -> None:
        return None

    @app.task("report", unique="report")
    async def report(payload: None) -> None:
        return None

    return app


async def test_steps_and_maps_become_one_draft_with_an_edge_per_parent_job() -> None:
    app = make_app()
    wf = app.workflow("site")
    home = wf.step("crawl", {"url": "/"}, name="home")
    pages = wf.map("crawl", [Page(url=f"/{i}") for i in range(3)], name="pages", after=home)
    links = wf.map("crawl", [{"url": "/a"}, {"url": "/b"}], name="links", after={pages: "continue"})
    wf.step("report", None, after=[links, "home"])
    draft = wf.draft()

    assert [d.step for d in draft.steps] == [
        "home", "pages[0]", "pages[1]", "pages[2]", "links[0]", "links[1]", "report",
    ]
    by_id = {d.id: d.step for d in draft.steps}
    edges = {(by_id[e.parent], by_id[e.child], e.policy) for e in draft.edges}
    assert {(p, c) for p, c, _ in edges if c.startswith("pages")} == {("home", f"pages[{i}]") for i in range(3)}
    assert len([e for e in edges if e[1].startswith("links")]) == 6  # every page before every link
    assert {pol for _, c, pol in edges if c.startswith("links")} == {Policy.CONTINUE}
    assert {(p, pol) for p, c, pol in edges if c == "report"} == {
        ("links[0]", Policy.FAIL), ("links[1]", Policy.FAIL), ("home", Policy.FAIL),
    }
    assert pages.job_ids == tuple(d.id for d in draft.steps[1:4])
    assert draft.steps[-1].meta[AFTER_META] == "links,home" and AFTER_META not in draft.steps[0].meta
    assert {d.workflow_id for d in draft.steps} == {wf.id}
    assert draft.steps[0].queue == "web" and draft.steps[0].payload == {"url": "/"}


async def test_enqueue_stores_the_graph_at_once_and_again_returns_what_was_stored() -> None:
    app = make_app()
    seen: list[int] = []
    app.enqueue_listeners.append(lambda jobs: seen.append(len(jobs)))
    wf = app.workflow("site")
    wf.map("crawl", [{"url": "/x"}, {"url": "/y"}], name="pages")
    wf.step("report", None, after="pages")
    stored = await wf.aenqueue()
    assert [j.status for j in stored.steps] == [JobStatus.PENDING, JobStatus.PENDING, JobStatus.BLOCKED]
    again = await wf.aenqueue()  # a retried enqueue (a lost reply): the same workflow, unchanged
    assert again.id == stored.id and len((await app.alist_workflows()).workflows) == 1
    assert seen == [3, 3]
    assert (await app.aget_workflow(stored.id)) == stored
    await app.aclose()


def test_the_sync_facade_enqueues_reads_cancels_and_retries() -> None:
    with make_app() as app:
        wf = app.workflow("sync")
        wf.step("crawl", {"url": "/"}, name="one", delay=60)
        stored = wf.enqueue()
        assert app.get_workflow(stored.id) == stored
        assert [w.id for w in app.list_workflows(limit=5).workflows] == [stored.id]
        assert app.cancel_workflow(stored.id).steps[0].status is JobStatus.CANCELLED
        assert app.retry_workflow(stored.id).steps[0].status is JobStatus.PENDING
        with pytest.raises(WorkflowNotFound):
            app.cancel_workflow("01M831ZZHYQ2TZ80B4QPZGTAF6")
        assert app.get_workflow("01M831ZZHYQ2TZ80B4QPZGTAF6") is None


def test_options_override_the_task_and_a_unique_key_never_reaches_a_step() -> None:
    app = make_app()
    wf = app.workflow("opts")
    a = wf.step("crawl", {"url": "/"}, queue="slow", priority=7, max_attempts=4, timeout=5)
    b = wf.step("report", None, after=a)
    first, second = wf.draft().steps
    assert (first.queue, first.priority, first.max_attempts, first.timeout) == ("slow", 7, 4, 5.0)
    assert first.step == "crawl" and b.name == "report" and second.unique_key is None


@pytest.mark.parametrize(
    ("build", "error", "text"),
    [
        (lambda wf: wf.step("crawl", {"url": "/"}, after="nope"), ValueError, "'nope', which is not a step"),
        (lambda wf: wf.step("crawl", {"url": "/"}, name="a b"), ValueError, "bad step name 'a b'"),
        (lambda wf: wf.step("crawl", {"url": "/"}, name="x[1]"), ValueError, "bad step name"),
        (lambda wf: wf.step("crawl", {"url": "/"}, name="x" * 101), ValueError, "1 to 100 characters"),
        (lambda wf: wf.step("mail@eu", None), ValueError, "'mail@eu' (the task's name, taken as the step's: pass name=)"),
        (lambda wf: [wf.step("crawl", {"url": "/"}), wf.step("crawl", {"url": "/2"})], ValueError,
         "already has a step named 'crawl'"),
        (lambda wf: wf.step("report", None, after={wf.step("crawl", {"url": "/"}): "sometimes"}), ValueError,
         "unknown policy 'sometimes'"),
        (lambda wf: wf.step("report", None, after=wf.step("crawl", {"url": "/"}), delay=5), ValueError,
         "runs when they finish"),
        (lambda wf: wf.step("crawl", {"url": 3}), PayloadError, "'url'"),
        (lambda wf: wf.map("crawl", [{"url": "/"}, {}]), PayloadError, "'url'"),
        (lambda wf: wf.step("nosuch", {}), UnknownTaskError, "nosuch"),
        (lambda wf: wf.step("crawl", {"url": "/"}, max_attempts=0), ValueError, "max_attempts"),
        (lambda wf: wf.step("report", None, after=[3]), TypeError, "step references or step names"),
        (lambda wf: wf.draft(), ValueError, "has no steps"),
    ],
    ids=["unknown parent", "space", "brackets", "too long", "task name", "duplicate", "policy", "delay with parents",
         "payload", "mapped payload", "unknown task", "attempts", "not a ref", "empty"],
)
def test_builder_refuses_with_a_clear_error(build, error: type[Exception], text: str) -> None:  # type: ignore[no-untyped-def]
    wf = make_app().workflow("bad")
    with pytest.raises(error, match=None) as raised:
        build(wf)
    assert text in str(raised.value)


def test_a_step_of_another_workflow_and_a_bad_workflow_name_are_refused() -> None:
    app = make_app()
    other = app.workflow("one").step("crawl", {"url": "/"})
    with pytest.raises(ValueError, match="step of another workflow"):
        app.workflow("two").step("report", None, after=other)
    with pytest.raises(InvalidNameError, match="workflow name"):
        app.workflow("no spaces")


async def test_connection_is_refused_on_a_backend_without_transactions_naming_it() -> None:
    app = make_app()
    wf = app.workflow("tx")
    wf.step("crawl", {"url": "/"})
    with pytest.raises(ConfigError, match=r"memory \(MemoryBackend\) backend cannot take a connection"):
        await wf.aenqueue(connection=object())
    assert (await app.alist_workflows()).workflows == []
    await app.aclose()


async def test_a_map_over_no_items_adds_no_jobs_and_its_children_do_not_wait() -> None:
    app = make_app()
    wf = app.workflow("empty")
    none = wf.map("crawl", [], name="pages")
    wf.step("report", None, after={none: "continue"})
    stored = await wf.aenqueue()
    assert [(j.step, j.status) for j in stored.steps] == [("report", JobStatus.PENDING)]
    await app.aclose()
