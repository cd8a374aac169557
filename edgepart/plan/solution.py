"""A solver's answer: tier and precision per node, codec per (tensor, link), and how it was found."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgepart.cost.model import CostModel, Metrics, Objective, evaluate
from edgepart.errors import CheckFailedError


@dataclass
class Solution:
    """Indices into the cost model's tiers, precisions and codecs."""

    tiers: np.ndarray  # [N]
    precisions: np.ndarray  # [N]
    codecs: np.ndarray  # [T, L]
    solver: str
    status: str = "optimal"  # optimal | feasible (time limit, gap > 0) | heuristic
    seconds: float = 0.0
    gap: float | None = 0.0
    notes: list[str] = field(default_factory=list)

    def metrics(self, model: CostModel) -> Metrics:
        return evaluate(model, self.tiers[None, :], self.precisions[None, :], self.codecs[None, ...])

    def objective(self, model: CostModel, objective: Objective) -> float:
        return float(self.metrics(model).objective(objective)[0])


def best_choices(model: CostModel, objective: Objective) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Without budgets, precision and codec choices are independent per (node, tier) and per
    (tensor, link): the cheapest wins. Returns costs [N,K], precisions [N,K], costs [T,L], codecs [T,L]."""
    node, transfer, _, _ = model.combined(objective)
    return node.min(axis=2), node.argmin(axis=2), transfer.min(axis=2), transfer.argmin(axis=2)


@dataclass(frozen=True)
class Unbudgeted:
    """The additive costs of the unbudgeted problem, precision and codec already chosen."""

    node: np.ndarray  # [N, K], pins and the return of outputs included
    precision: np.ndarray  # [N, K] index of the cheapest precision
    transfer: np.ndarray  # [T, L]
    codec: np.ndarray  # [T, L] index of the cheapest codec
    link: np.ndarray  # [L]


def unbudgeted(model: CostModel, objective: Objective) -> Unbudgeted:
    node, precision, transfer, codec = best_choices(model, objective)
    _, _, _, link = model.combined(objective)
    return Unbudgeted(apply_pins(node + return_costs(model, objective), model), precision, transfer, codec, link)


def apply_pins(node_cost: np.ndarray, model: CostModel) -> np.ndarray:
    node_cost = node_cost.copy()
    for node, tier in model.pinned.items():
        keep = node_cost[node, tier]
        node_cost[node, :] = np.inf
        node_cost[node, tier] = keep
    return node_cost


def return_costs(model: CostModel, objective: Objective) -> np.ndarray:
    """[N, K] cost of bringing each graph output down to the output tier, charged to its producer."""
    _, _, back, _ = model.combined(objective)
    n, k = model.node_latency.shape[:2]
    cost = np.zeros((n, k))
    for t, tensor in enumerate(model.tensors):
        if not tensor.is_output:
            continue
        for tier in range(k):
            cost[tensor.producer, tier] += back[t, model.output_tier:tier].sum()
    return cost


def require_valid(solution: Solution, model: CostModel, objective: Objective) -> Solution:
    """Raise CheckFailedError unless the solution keeps every pin and flow-up rule at a finite cost."""
    metrics = solution.metrics(model)
    if bool(metrics.ordered[0]) and np.isfinite(metrics.objective(objective)[0]):
        return solution
    raise CheckFailedError(pin_conflict(model) or "no assignment satisfies the pins and the allowed precisions")


def pin_conflict(model: CostModel) -> str | None:
    """A pair of pins that cannot both hold: a node pinned above a node it feeds."""
    successors: dict[int, set[int]] = {}
    for u, v in model.ordered_edges():
        successors.setdefault(u, set()).add(v)
    for source, tier in sorted(model.pinned.items()):
        stack, seen = [source], {source}
        while stack:
            for nxt in successors.get(stack.pop(), ()):
                if nxt in seen:
                    continue
                seen.add(nxt)
                stack.append(nxt)
                if nxt in model.pinned and model.pinned[nxt] < tier:
                    return (f"pins contradict: '{model.nodes[source]}' is pinned to tier '{model.tiers[tier]}' but "
                            f"feeds '{model.nodes[nxt]}', pinned to the lower tier '{model.tiers[model.pinned[nxt]]}'")
    return None
