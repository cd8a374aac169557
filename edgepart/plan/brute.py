"""Brute force over every assignment: the reference the other solvers are tested against.

Exponential: for graphs of a dozen nodes. Precisions are enumerated; codecs too when asked,
otherwise the cheapest per (tensor, link), which is exact when no budget is set.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from edgepart.cost.model import CostModel, Objective, evaluate  # noqa: F401 - re-exported for tests
from edgepart.errors import CheckFailedError
from edgepart.plan.solution import Solution, best_choices

MAX_ASSIGNMENTS = 20_000_000
CHUNK = 200_000


def solve(model: CostModel, objective: Objective, enumerate_codecs: bool = False) -> Solution:
    started = time.perf_counter()
    n, k, p, t, c = model.shape
    links = len(model.links)
    free = [v for v in range(n) if v not in model.pinned]
    choices_per_node = k * p
    codec_slots = t * links if enumerate_codecs else 0
    total = choices_per_node ** len(free) * c**codec_slots
    if total > MAX_ASSIGNMENTS:
        raise ValueError(f"brute force over {total} assignments is too many")
    _, _, _, best_codecs = best_choices(model, objective)
    best_value, best = np.inf, None
    node_choices = itertools.product(range(choices_per_node), repeat=len(free))
    codec_choices = itertools.product(range(c), repeat=codec_slots) if codec_slots else [()]
    for node_combo, codec_combo in _chunks(itertools.product(node_choices, codec_choices)):
        combos = np.array(node_combo, dtype=int).reshape(len(node_combo), len(free))
        m = combos.shape[0]
        tiers = np.zeros((m, n), dtype=int)
        precisions = np.zeros((m, n), dtype=int)
        tiers[:, free], precisions[:, free] = combos // p, combos % p
        for node, tier in model.pinned.items():
            tiers[:, node] = tier
            precisions[:, node] = np.argmin(model.node_latency[node, tier])
        if codec_slots:
            codecs = np.array(codec_combo, dtype=int).reshape(m, t, links)
        else:
            codecs = np.broadcast_to(best_codecs, (m, t, links))
        metrics = evaluate(model, tiers, precisions, codecs)
        values = np.where(metrics.feasible(model), metrics.objective(objective), np.inf)
        i = int(np.argmin(values))
        if values[i] < best_value:
            best_value = values[i]
            best = Solution(tiers[i].copy(), precisions[i].copy(), np.array(codecs[i]), "brute")
    if best is None or not np.isfinite(best_value):
        raise CheckFailedError("no assignment meets the budgets")
    best.seconds = time.perf_counter() - started
    return best


def _chunks(pairs):
    while True:
        chunk = list(itertools.islice(pairs, CHUNK))
        if not chunk:
            return
        yield [a for a, _ in chunk], [b for _, b in chunk]
