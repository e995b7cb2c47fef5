"""The jobs of a run as a graph when they have `needs` (issue 13, item 3): one box per
workflow job (a matrix's instances share it, as GitHub Actions draws them), columns by
depth, an edge from each need to the job that waits for it. Drawn on the server as SVG:
nothing to lay out in the browser, and it shows without script.

A box's state is its instances' worst (failure before running before pending before
success); it links to its first instance's section of the page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BOX_W, BOX_H = 190, 44
GAP_X, GAP_Y = 70, 18

# Which instance state decides the box: the first found in this order.
ORDER = (
    "failure",
    "error",
    "timed_out",
    "cancelled",
    "blocked",
    "running",
    "queued",
    "pending",
    "waiting",
    "success",
    "skipped",
)


@dataclass
class Node:
    name: str
    needs: list[str]
    states: list[str] = field(default_factory=list)
    first_job_id: int = 0
    column: int = 0
    row: int = 0

    @property
    def state(self) -> str:
        for state in ORDER:
            if state in self.states:
                return state
        return self.states[0] if self.states else "pending"

    @property
    def label(self) -> str:
        done = sum(1 for s in self.states if s in ("success", "skipped"))
        count = len(self.states)
        return self.name if count == 1 else f"{self.name} ({done}/{count})"

    @property
    def x(self) -> int:
        return self.column * (BOX_W + GAP_X)

    @property
    def y(self) -> int:
        return self.row * (BOX_H + GAP_Y)


@dataclass
class Graph:
    nodes: list[Node]
    edges: list[tuple[Node, Node]]  # (need, job that needs it)
    width: int
    height: int

    def edge_path(self, need: Node, job: Node) -> str:
        x1, y1 = need.x + BOX_W, need.y + BOX_H // 2
        x2, y2 = job.x, job.y + BOX_H // 2
        mid = (x1 + x2) // 2
        return f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"


def job_graph(jobs: list[dict[str, Any]]) -> Graph | None:
    """The graph of `jobs` (run_detail's rows), or None when no job needs another."""
    nodes: dict[str, Node] = {}
    for row in jobs:
        job = row["job"]
        name = job.get("workflow_job") or job["job_key"]
        node = nodes.get(name)
        if node is None:
            node = nodes[name] = Node(name, list(row.get("needs") or []), first_job_id=job["id"])
        node.states.append(job["state"])
    if not any(node.needs for node in nodes.values()):
        return None
    depth: dict[str, int] = {}

    def column_of(name: str, seen: frozenset[str]) -> int:
        # A need the run does not have (or a cycle, which planning refuses) counts as a root.
        if name in depth:
            return depth[name]
        node = nodes[name]
        known = [n for n in node.needs if n in nodes and n not in seen]
        depth[name] = 1 + max((column_of(n, seen | {name}) for n in known), default=-1)
        return depth[name]

    rows_used: dict[int, int] = {}
    for name, node in nodes.items():
        node.column = column_of(name, frozenset())
        node.row = rows_used.get(node.column, 0)
        rows_used[node.column] = node.row + 1
    edges = [(nodes[n], node) for node in nodes.values() for n in node.needs if n in nodes]
    columns = max(node.column for node in nodes.values()) + 1
    width = columns * BOX_W + (columns - 1) * GAP_X
    height = max(rows_used.values()) * (BOX_H + GAP_Y) - GAP_Y
    return Graph(list(nodes.values()), edges, width, height)
