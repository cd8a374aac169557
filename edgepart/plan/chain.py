"""Single-split solver (Neurosurgeon): the nodes, in one topological order, are cut into K
consecutive runs, run i on tier i. Exhaustive over split points by dynamic programming.

Every prefix of a topological order is closed under predecessors, so each candidate is a valid
plan; the best one is optimal among single splits only: the baseline every table shows.
"""

from __future__ import annotations

import collections
import time

import numpy as np

from edgepart.cost.model import CostModel, Objective
from edgepart.errors import CheckFailedError
from edgepart.plan.solution import Solution, require_valid, unbudgeted


def solve(model: CostModel, objective: Objective) -> Solution:
    started = time.perf_counter()
    costs = unbudgeted(model, objective)
    node_cost, precision_of, transfer_cost, codec_of, link_cost = (
        costs.node, costs.precision, costs.transfer, costs.codec, costs.link)
    n, k = node_cost.shape
    order = [v for v in range(n) if v not in model.unordered]
    position = {v: i for i, v in enumerate(order)}
    m = len(order)
    costs = node_cost[order]  # [m, K]
    finite_prefix = np.vstack([np.zeros(k), np.cumsum(np.where(np.isinf(costs), 0.0, costs), axis=0)])
    # best[i]: cheapest placement of order[:i] on the tiers so far, with the next run starting at i
    best = np.where(_allowed_prefix(costs[:, 0]), finite_prefix[:, 0], np.inf)
    starts = []
    for tier in range(1, k):
        link = tier - 1
        used = np.where((np.arange(m + 1) < m) | (model.output_tier > link), link_cost[link], 0.0)
        shifted = best + _crossing_cost(model, transfer_cost[:, link], position, m, link) + used
        shifted -= finite_prefix[:, tier]
        first_allowed = _first_allowed_start(costs[:, tier])
        argmins = _window_argmin(shifted, first_allowed)
        best = shifted[argmins] + finite_prefix[:, tier]
        starts.append(argmins)
    split = [m]
    for argmins in reversed(starts):
        split.append(int(argmins[split[-1]]))
    split = split[::-1]  # split[t - 1] = first position on tier t, for t = 1..K-1
    tiers = np.zeros(n, dtype=int)
    for tier in range(1, k):
        for v in order[split[tier - 1]:]:
            tiers[v] = tier
    for v in model.unordered:
        tiers[v] = model.pinned.get(v, model.output_tier)
    solution = Solution(tiers, precision_of[np.arange(n), tiers], codec_of.copy(), "chain",
                        seconds=time.perf_counter() - started)
    if not np.isfinite(solution.objective(model, objective)) and not solution.metrics(model).ordered[0]:
        raise CheckFailedError("no single split satisfies the pins of this deployment")
    return require_valid(solution, model, objective)


def _first_allowed_start(cost: np.ndarray) -> np.ndarray:
    """[m + 1]: for a run ending at j, the smallest start i such that order[i:j] may run on this tier."""
    first = np.zeros(len(cost) + 1, dtype=int)
    for j in range(1, len(cost) + 1):
        first[j] = j if np.isinf(cost[j - 1]) else first[j - 1]
    return first


def _allowed_prefix(cost: np.ndarray) -> np.ndarray:
    """[m + 1]: whether order[:j] may all run on this tier."""
    return np.concatenate([[True], np.cumsum(np.isinf(cost)) == 0])


def _window_argmin(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """For each j, the index of the smallest values[i] with first[j] <= i <= j (first is nondecreasing)."""
    result = np.zeros(len(values), dtype=int)
    window: collections.deque[int] = collections.deque()
    for j, value in enumerate(values):
        while window and values[window[-1]] >= value:
            window.pop()
        window.append(j)
        while window[0] < first[j]:
            window.popleft()
        result[j] = window[0]
    return result


def _crossing_cost(model: CostModel, cost: np.ndarray, position: dict[int, int], m: int, link: int) -> np.ndarray:
    """[m + 1]: transfer cost over `link` when the run above it starts at position s.

    A tensor crosses when its producer sits below the split (position < s) and a consumer above
    it (position >= s, or an output consumed on a tier above the link)."""
    delta = np.zeros(m + 2)
    for t, tensor in enumerate(model.tensors):
        start = position[tensor.producer] + 1
        reach = max((position[c] for c in tensor.consumers if c in position), default=-1)
        if any(c not in position for c in tensor.consumers) and model.output_tier > link:
            reach = m
        if reach >= start:
            delta[start] += cost[t]
            delta[reach + 1] -= cost[t]
    return np.cumsum(delta)[: m + 1]
