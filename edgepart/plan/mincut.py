"""Exact min-cut solver (DADS for two tiers; Ishikawa's layered construction for K ordered tiers).

Each node v gets K - 1 graph vertices (v, l), on the source side when v runs on tier >= l.
A chain of edges per node carries its cost on each tier; infinite edges keep each chain monotone
and make data flow up the tiers only. A tensor with several consumers goes through one auxiliary
vertex per link, so it is paid once per link however many consumers sit above. One more vertex per
link carries the link's per-inference overhead, paid when anything runs above it.
Precision and codec are the cheapest per (node, tier) and per (tensor, link): exact without budgets.
"""

from __future__ import annotations

import time

import numpy as np

from edgepart.cost.model import CostModel, Objective
from edgepart.plan.solution import Solution, require_valid, unbudgeted


def solve(model: CostModel, objective: Objective) -> Solution:
    started = time.perf_counter()
    costs = unbudgeted(model, objective)
    n, k = costs.node.shape
    tiers = _layered_cut(model, costs.node, costs.transfer, costs.link) if k > 1 else np.zeros(n, dtype=int)
    precisions = costs.precision[np.arange(n), tiers]
    solution = Solution(tiers, precisions, costs.codec.copy(), "mincut", seconds=time.perf_counter() - started)
    return require_valid(solution, model, objective)


class _FlowGraph:
    """Edges with capacities; infinite ones get a capacity above any finite cut."""

    def __init__(self, vertices: int) -> None:
        self.vertices = vertices
        self.edges: list[tuple[int, int]] = []
        self.capacity: list[float] = []

    def add_vertex(self) -> int:
        self.vertices += 1
        return self.vertices - 1

    def add(self, u: int, v: int, capacity: float) -> None:
        if capacity > 0:
            self.edges.append((u, v))
            self.capacity.append(capacity)

    def source_side(self, source: int, sink: int) -> set[int]:
        capacity = np.asarray(self.capacity, dtype=float)
        finite = capacity[np.isfinite(capacity)]
        capacity[~np.isfinite(capacity)] = 1.0 + 2.0 * finite.sum() if finite.size else 1.0
        import igraph  # noqa: PLC0415 - loaded when a cut is solved, not when the CLI starts

        graph = igraph.Graph(n=self.vertices, edges=self.edges, directed=True)
        cut = graph.mincut(source, sink, capacity=capacity.tolist())
        return set(cut.partition[0])


def _layered_cut(model: CostModel, node_cost: np.ndarray, transfer_cost: np.ndarray,
                 link_cost: np.ndarray) -> np.ndarray:
    n, k = node_cost.shape
    levels = k - 1
    source, sink = 0, 1
    graph = _FlowGraph(2 + n * levels)

    def vertex(node: int, level: int) -> int:  # level 1..K-1: "runs on tier >= level"
        return 2 + node * levels + (level - 1)

    for v in range(n):
        graph.add(source, vertex(v, 1), node_cost[v, 0])
        for level in range(1, levels):
            graph.add(vertex(v, level), vertex(v, level + 1), node_cost[v, level])
            graph.add(vertex(v, level + 1), vertex(v, level), np.inf)
        graph.add(vertex(v, levels), sink, node_cost[v, levels])
    for u, v in model.ordered_edges():
        for level in range(1, k):
            graph.add(vertex(u, level), vertex(v, level), np.inf)
    for t, tensor in enumerate(model.tensors):
        for level in range(1, k):
            weight = transfer_cost[t, level - 1]
            if len(tensor.consumers) == 1:
                graph.add(vertex(tensor.consumers[0], level), vertex(tensor.producer, level), weight)
            elif tensor.consumers and weight > 0:
                any_above = graph.add_vertex()
                for consumer in tensor.consumers:
                    graph.add(vertex(consumer, level), any_above, np.inf)
                graph.add(any_above, vertex(tensor.producer, level), weight)
    for level in range(1, k):
        if link_cost[level - 1] > 0:
            link_used = graph.add_vertex()
            for v in range(n):
                graph.add(vertex(v, level), link_used, np.inf)
            graph.add(link_used, sink, link_cost[level - 1])
    above = graph.source_side(source, sink)
    return np.array([sum(vertex(v, level) in above for level in range(1, k)) for v in range(n)], dtype=int)
