"""A workflow's graph laid out for the dashboard, drawn on the server as SVG geometry: a map
of many jobs collapsed into one node (edges bundled with it), longest-path layers from the
roots, a few barycentre sweeps to reduce crossings, and node boxes and edge paths.

Everything is O(n log n) in steps plus edges: one pass to group, one topological pass for the
layers, three sorting sweeps for the order, one pass for the geometry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from taskyard.core.job import Job, JobStatus
from taskyard.core.workflow import Edge, EdgeState, Policy, Workflow, step_base

__all__ = (
    "COLLAPSE_OVER", "Dag", "DagEdge", "DagNode", "Group", "Link", "collapse", "layers", "layout",
    "leading_status", "order", "status_counts",
)

#: A map of more jobs than this is drawn as one node with its counts per status.
COLLAPSE_OVER = 12
NODE_W, NODE_H = 196, 46
GAP_X, GAP_Y, PAD = 64, 14, 12
LABEL_CHARS, DETAIL_CHARS = 26, 32
#: The status a collapsed map is coloured by: the first of these that any of its jobs has.
LEADING = (JobStatus.FAILED, JobStatus.RUNNING, JobStatus.PENDING, JobStatus.SCHEDULED,
           JobStatus.BLOCKED, JobStatus.CANCELLED, JobStatus.COMPLETED)


@dataclass(slots=True)
class Group:
    """One node's jobs: a plain step, one job of a small map, or a whole collapsed map."""

    key: str
    name: str
    jobs: list[Job]
    #: Position of the group's first job in step order (the initial order in a layer).
    first: int
    is_map: bool = False


@dataclass(slots=True)
class Link:
    """The edges from one node to another (many when either end is a collapsed map)."""

    parent: str
    child: str
    edges: list[Edge] = field(default_factory=list)


def status_counts(jobs: Iterable[Job]) -> list[tuple[str, int]]:
    """(status, how many) of `jobs`, in the order of `JobStatus`, the zeros left out."""
    counts = dict.fromkeys(JobStatus, 0)
    for job in jobs:
        counts[job.status] += 1
    return [(s.value, n) for s, n in counts.items() if n]


def leading_status(counts: Sequence[tuple[str, int]]) -> str:
    """The status a group of jobs is coloured by (see `LEADING`)."""
    present = {s for s, n in counts if n}
    return next((s.value for s in LEADING if s.value in present), JobStatus.COMPLETED.value)


def collapse(workflow: Workflow, *, over: int = COLLAPSE_OVER) -> tuple[list[Group], list[Link]]:
    """The workflow's nodes and links: every job its own node, except the jobs of a map
    (`name[i]`) of more than `over` jobs, which become one node keyed `map:name`; the edges
    between two nodes are bundled into one link (an edge inside a collapsed map is dropped)."""
    sizes: dict[str, int] = {}
    bases: list[tuple[str, int | None]] = []
    for job in workflow.steps:
        base, index = step_base(job.step or job.id)
        bases.append((base, index))
        if index is not None:
            sizes[base] = sizes.get(base, 0) + 1
    groups: dict[str, Group] = {}
    node_of: dict[str, str] = {}
    for i, (job, (base, index)) in enumerate(zip(workflow.steps, bases, strict=True)):
        if index is not None and sizes[base] > over:
            key = "map:" + base
            group = groups.get(key)
            if group is None:
                group = groups[key] = Group(key, base, [], i, is_map=True)
            group.jobs.append(job)
        else:
            key = job.id
            groups[key] = Group(key, job.step or job.id, [job], i)
        node_of[job.id] = key
    links: dict[tuple[str, str], Link] = {}
    for edge in workflow.edges:
        parent, child = node_of.get(edge.parent), node_of.get(edge.child)
        if parent is None or child is None or parent == child:
            continue  # a pruned step, or an edge inside one collapsed map
        link = links.get((parent, child))
        if link is None:
            link = links[(parent, child)] = Link(parent, child)
        link.edges.append(edge)
    for group in groups.values():
        if group.is_map:
            group.jobs.sort(key=lambda j: step_base(j.step or "")[1] or 0)
    return list(groups.values()), list(links.values())


def layers(keys: Sequence[str], links: Sequence[Link]) -> dict[str, int]:
    """Each node's layer: 0 for a root, else one more than its deepest parent (the longest
    path from the roots). Kahn's order over `keys`; a cycle (only possible when a collapse
    joins steps on both sides of another) is broken by placing its nodes after the rest."""
    parents: dict[str, list[str]] = {k: [] for k in keys}
    children: dict[str, list[str]] = {k: [] for k in keys}
    for link in links:
        parents[link.child].append(link.parent)
        children[link.parent].append(link.child)
    waiting = {k: len(parents[k]) for k in keys}
    ready = [k for k in keys if waiting[k] == 0]
    layer: dict[str, int] = {}
    while True:
        while ready:
            key = ready.pop()
            layer[key] = max((layer[p] + 1 for p in parents[key] if p in layer), default=0)
            for child in children[key]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        stuck = [k for k in keys if k not in layer]
        if not stuck:
            return layer
        ready.append(stuck[0])  # break the cycle at its first node in step order
        waiting[stuck[0]] = 0


def order(layer: dict[str, int], links: Sequence[Link], *, first: dict[str, int], sweeps: int = 3) -> list[list[str]]:
    """The nodes of each layer, top to bottom: first in step order, then sorted by the mean
    position of their parents (a sweep down), of their children (a sweep up), and down again.
    A node with no neighbour on the side a sweep looks at keeps its place."""
    count = max(layer.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(count)]
    for key in sorted(layer, key=lambda k: first[k]):
        rows[layer[key]].append(key)
    ups: dict[str, list[str]] = {k: [] for k in layer}
    downs: dict[str, list[str]] = {k: [] for k in layer}
    for link in links:
        ups[link.child].append(link.parent)
        downs[link.parent].append(link.child)
    pos: dict[str, float] = {}

    def place(row: list[str]) -> None:
        middle = (len(row) - 1) / 2
        for i, key in enumerate(row):
            pos[key] = i - middle

    for row in rows:
        place(row)
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        side = ups if down else downs
        indices = range(1, count) if down else range(count - 2, -1, -1)
        for i in indices:
            row = rows[i]
            keys = {k: (sum(pos[n] for n in side[k]) / len(side[k]) if side[k] else pos[k], pos[k]) for k in row}
            row.sort(key=keys.__getitem__)
            place(row)
    return rows


@dataclass(frozen=True, slots=True)
class Segment:
    """A share of a collapsed map's status bar."""

    x: float
    w: float
    status: str


@dataclass(frozen=True, slots=True)
class DagNode:
    """One box: where, what it says, what it links to, how it is coloured."""

    key: str
    x: float
    y: float
    label: str
    detail: str
    title: str
    status: str
    href: str
    #: The job a plain node follows live (None for a collapsed map).
    job_id: str | None = None
    #: What follows a plain node's status on its second line (" · attempt 2").
    note: str = ""
    counts: tuple[tuple[str, int], ...] = ()
    bar: tuple[Segment, ...] = ()


@dataclass(frozen=True, slots=True)
class DagEdge:
    """One drawn link: an SVG path, its state and whether it is drawn dashed."""

    d: str
    state: str
    dashed: bool
    title: str


@dataclass(frozen=True, slots=True)
class Dag:
    """What the workflow page's SVG needs."""

    nodes: list[DagNode]
    edges: list[DagEdge]
    width: int
    height: int
    #: The nodes' jobs, in step order (the page's table of steps).
    groups: list[Group] = field(default_factory=list)
    node_w: int = NODE_W
    node_h: int = NODE_H


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _bar(counts: Sequence[tuple[str, int]], x: float, width: float) -> tuple[Segment, ...]:
    """Each status's share of `width`, at least 2 px so two failures in a thousand show."""
    total = sum(n for _, n in counts)
    widths = [max(2.0, width * n / total) for _, n in counts]
    widths[widths.index(max(widths))] -= sum(widths) - width
    out, at = [], x
    for (status, _), w in zip(counts, widths, strict=True):
        out.append(Segment(round(at, 1), round(w, 1), status))
        at += w
    return tuple(out)


def _node(group: Group, x: float, y: float, workflow_id: str) -> DagNode:
    if group.is_map:
        counts = tuple(status_counts(group.jobs))
        detail = ", ".join(f"{n} {s}" for s, n in counts)
        label = f"{group.name} \u00d7{len(group.jobs)}"
        return DagNode(
            key=group.key, x=x, y=y, label=_cut(label, LABEL_CHARS), detail=_cut(detail, DETAIL_CHARS),
            title=f"{label}: {detail}", status=leading_status(counts),
            href=f"/workflows/{workflow_id}/steps/{quote(group.name, safe='')}", counts=counts,
            bar=_bar(counts, x + 8, NODE_W - 16),
        )
    job = group.jobs[0]
    status = job.status.value
    note = "" if job.attempt <= 1 else f" \u00b7 attempt {job.attempt}"
    return DagNode(
        key=group.key, x=x, y=y, label=_cut(group.name, LABEL_CHARS), detail=status + note,
        title=f"{group.name}: {status}{note} ({job.task})", status=status, href=f"/jobs/{job.id}",
        job_id=job.id, note=note,
    )


_POLICY_SAYS = {
    Policy.CONTINUE: "runs even if {parent} fails (the workflow still fails)",
    Policy.IGNORE: "runs even if {parent} fails, and that failure does not fail the workflow",
}


def _edge(link: Link, a: DagNode, b: DagNode, names: dict[str, str]) -> DagEdge:
    if len(link.edges) == 1:  # the common case, kept cheap for graphs of thousands of edges
        state = link.edges[0].state.value
        lenient: list[Policy] = [] if link.edges[0].policy is Policy.FAIL else [link.edges[0].policy]
    else:
        states = {e.state for e in link.edges}
        state = next((s for s in (EdgeState.FAILED, EdgeState.OPEN) if s in states), EdgeState.DONE).value
        lenient = sorted({e.policy for e in link.edges} - {Policy.FAIL})
    parent, child = names[link.parent], names[link.child]
    many = f"{len(link.edges)} edges, " if len(link.edges) > 1 else ""
    if lenient:
        says = "; ".join(f"{p.value}: {child} " + _POLICY_SAYS[p].format(parent=parent) for p in lenient)
    else:
        says = f"fail: {child} is cancelled if {parent} fails"
    x1, y1 = a.x + NODE_W, a.y + NODE_H / 2
    x2, y2 = b.x, b.y + NODE_H / 2
    dx = max(GAP_X / 2, (x2 - x1) / 2)
    d = f"M{x1:g},{y1:g} C{x1 + dx:g},{y1:g} {x2 - dx:g},{y2:g} {x2:g},{y2:g}"
    return DagEdge(d=d, state=state, dashed=bool(lenient),
                   title=f"{parent} \u2192 {child} ({many}{state}) \u2014 {says}")


def layout(workflow: Workflow, *, over: int = COLLAPSE_OVER) -> Dag:
    """The workflow drawn left to right: one column per layer, each column centred."""
    groups, links = collapse(workflow, over=over)
    by_key = {g.key: g for g in groups}
    layer = layers([g.key for g in groups], links)
    rows = order(layer, links, first={g.key: g.first for g in groups})
    tallest = max((len(r) for r in rows), default=0)
    nodes: dict[str, DagNode] = {}
    for i, row in enumerate(rows):
        top = PAD + (tallest - len(row)) * (NODE_H + GAP_Y) / 2
        for j, key in enumerate(row):
            nodes[key] = _node(by_key[key], PAD + i * (NODE_W + GAP_X), top + j * (NODE_H + GAP_Y), workflow.id)
    names = {g.key: g.name for g in groups}
    edges = [_edge(link, nodes[link.parent], nodes[link.child], names) for link in links]
    width = PAD * 2 + len(rows) * NODE_W + max(0, len(rows) - 1) * GAP_X
    height = PAD * 2 + tallest * NODE_H + max(0, tallest - 1) * GAP_Y
    return Dag(nodes=[nodes[k] for row in rows for k in row], edges=edges, width=width, height=height, groups=groups)
