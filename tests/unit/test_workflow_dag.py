"""The workflow page's graph (http/dashboard/dag.py): layers, collapsed maps, the order inside
a layer, and the SVG drawn from it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from taskyard.core.job import Job, JobStatus
from taskyard.core.workflow import Edge, EdgeState, Policy, Workflow, WorkflowDraft, WorkflowHeader
from taskyard.http.dashboard.dag import collapse, layers, layout, order
from taskyard.http.dashboard.render import Renderer
from tests.support.workflows import Graph

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"
S = JobStatus


def stored(g: Graph, status: dict[str, JobStatus] | None = None,
           edges: dict[tuple[str, str], EdgeState] | None = None) -> Workflow:
    """The workflow a backend would read back, with the given step statuses and edge states."""
    draft: WorkflowDraft = g.draft()
    jobs: list[Job] = []
    for job in draft.jobs(NOW):
        wanted = (status or {}).get(job.step or "")
        jobs.append(job.replace(status=wanted) if wanted else job)
    names = {v: k for k, v in g.ids.items()}
    drawn = tuple(Edge(e.parent, e.child, e.policy, (edges or {}).get((names[e.parent], names[e.child]), EdgeState.OPEN))
                  for e in draft.edges)
    return Workflow(WorkflowHeader(draft.id, draft.name, NOW), tuple(jobs), drawn)


def test_a_node_sits_one_layer_after_its_deepest_parent() -> None:
    g = Graph()
    g.add("a")
    g.add("b", after=["a"])
    g.add("c", after=["b"])
    g.add("d", after=["a", "c"])  # a skip edge: d still comes after c
    g.add("e")  # a second root
    groups, links = collapse(stored(g))
    depth = layers([x.key for x in groups], links)
    assert {x.name: depth[x.key] for x in groups} == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 0}


def test_a_big_map_collapses_into_one_node_with_its_counts_and_bundled_edges() -> None:
    g = Graph()
    g.add("plan")
    g.map("fetch", 1000, after=["plan"])
    g.map("small", 12, after=["plan"])
    g.add("report", after=[f"fetch[{i}]" for i in range(1000)])
    status = {f"fetch[{i}]": S.COMPLETED for i in range(998)} | {"fetch[998]": S.FAILED, "fetch[999]": S.FAILED}
    groups, links = collapse(stored(g, status))
    assert [x.name for x in groups] == ["plan", "fetch", *[f"small[{i}]" for i in range(12)], "report"]
    fetch = groups[1]
    assert fetch.is_map and fetch.key == "map:fetch" and len(fetch.jobs) == 1000
    assert [len(k.edges) for k in links if k.child == "map:fetch"] == [1000]
    assert [len(k.edges) for k in links if k.parent == "map:fetch"] == [1000]
    assert len(links) == 2 + 12  # plan→fetch, fetch→report, plan→small[i]
    dag = layout(stored(g, status))
    node = next(n for n in dag.nodes if n.key == "map:fetch")
    assert node.label == "fetch \u00d71000"
    assert node.detail == "998 completed, 2 failed"
    assert node.status == "failed" and node.job_id is None
    assert node.href.endswith("/steps/fetch")
    assert [s.status for s in node.bar] == ["completed", "failed"]
    assert min(s.w for s in node.bar) >= 2  # two in a thousand still show
    assert len(dag.nodes) == 1 + 1 + 12 + 1


def test_an_edge_inside_a_collapsed_map_is_dropped_and_a_cycle_through_it_still_lays_out() -> None:
    g = Graph()
    g.add("m[0]")
    g.add("z", after=["m[0]"])
    g.add("m[1]", after=["z"])
    for i in range(2, 14):
        g.add(f"m[{i}]", after=["m[1]"])
    groups, links = collapse(stored(g))
    assert [x.name for x in groups] == ["m", "z"]
    assert {(k.parent, k.child) for k in links} == {("map:m", groups[1].key), (groups[1].key, "map:m")}
    depth = layers([x.key for x in groups], links)
    assert sorted(depth.values()) == [0, 1]


def test_barycentre_ordering_uncrosses_two_fans() -> None:
    g = Graph()
    g.add("a")
    g.add("b")
    g.add("b1", after=["b"])  # in step order b's child comes first: the edges would cross
    g.add("a1", after=["a"])
    groups, links = collapse(stored(g))
    keys = {x.name: x.key for x in groups}
    rows = order(layers(list(keys.values()), links), links, first={x.key: x.first for x in groups})
    names = {v: k for k, v in keys.items()}
    assert [[names[k] for k in row] for row in rows] == [["a", "b"], ["a1", "b1"]]


def test_a_thousand_step_chain_of_fans_lays_out_in_layers() -> None:
    g = Graph()
    g.add("s0")
    for layer in range(1, 100):
        for i in range(10):
            g.add(f"s{layer}.{i}", after=[f"s{layer - 1}.{j}" for j in range(10)] if layer > 1 else ["s0"])
    dag = layout(stored(g))
    assert len(dag.nodes) == 991 and len(dag.edges) == 10 + 98 * 100
    assert len({n.x for n in dag.nodes}) == 100


def test_the_svg_is_valid_with_one_node_per_step_coloured_by_status_and_dashed_lenient_edges() -> None:
    g = Graph("onboard")
    g.add("plan")
    g.map("fetch", 3, after=["plan"])
    g.add("report", after={"fetch[0]": Policy.CONTINUE, "fetch[1]": Policy.IGNORE, "fetch[2]": Policy.FAIL})
    wf = stored(g, {"plan": S.COMPLETED, "fetch[0]": S.RUNNING, "fetch[1]": S.FAILED, "fetch[2]": S.PENDING},
                edges={("plan", f"fetch[{i}]"): EdgeState.DONE for i in range(3)} | {("fetch[1]", "report"): EdgeState.DONE})
    html = Renderer().env.get_template("_dag.html").render(dag=layout(wf), wf=wf)
    # The SVG alone parses as XML (an HTML parser forgives what an SVG file must not).
    svg = ET.fromstring(html[html.index("<svg "):html.index("</svg>") + 6].replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))
    assert svg.tag == f"{SVG}svg"
    nodes = svg.findall(f".//{SVG}a")
    assert [(n.get("href"), n.get("data-status")) for n in nodes] == [
        (f"/jobs/{g.ids['plan']}", "completed"),
        (f"/jobs/{g.ids['fetch[0]']}", "running"),
        (f"/jobs/{g.ids['fetch[1]']}", "failed"),
        (f"/jobs/{g.ids['fetch[2]']}", "pending"),
        (f"/jobs/{g.ids['report']}", "blocked"),
    ]
    assert all(n.get("data-job-id") for n in nodes)
    labels = [n.find(f"{SVG}text").text for n in nodes]  # type: ignore[union-attr]
    assert labels == ["plan", "fetch[0]", "fetch[1]", "fetch[2]", "report"]
    paths = svg.findall(f".//{SVG}path[@marker-end]")
    assert len(paths) == 6
    dashed = [p for p in paths if "lenient" in (p.get("class") or "")]
    assert len(dashed) == 2
    titles = sorted(p.find(f"{SVG}title").text or "" for p in dashed)  # type: ignore[union-attr]
    assert titles[0].startswith("fetch[0] \u2192 report (open) \u2014 continue: report runs even if fetch[0] fails")
    assert "ignore" in titles[1] and "(done)" in titles[1]
    assert {p.get("class") for p in paths if p not in dashed} >= {"edge e-done", "edge e-open"}
