"""The plan file (`edgepart.plan`): what runs where, in what precision, what crosses each link,
and what it is predicted to cost, beside the baselines. Documented in docs/file-formats.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgepart import __version__, schema
from edgepart.cost.build import codec_bytes
from edgepart.cost.model import CostModel, Metrics, Objective
from edgepart.graph import LayerGraph
from edgepart.plan.solution import Solution

SCHEMA_VERSION = 1
INFEASIBLE_SCHEMA_VERSION = 1


def plan_document(model_info: dict[str, Any], deployment_info: dict[str, Any], graph: LayerGraph,
                  cost: CostModel, objective: Objective, solution: Solution,
                  baselines: dict[str, tuple[Solution | None, CostModel]], cost_sources: dict[str, str],
                  reproducible: bool = False, backends_tried: list[dict] | None = None) -> dict[str, Any]:
    """`baselines`: name -> (solution, the cost model of the backends it is priced with).
    `backends_tried`: per combination of backends, its tiers' backends and the best objective (None: infeasible)."""
    metrics = solution.metrics(cost)
    body = {
        "edgepart_version": __version__,
        "model": {"path": model_info["path"], "sha256": model_info["sha256"]},
        "deployment": deployment_info,
        "objective": objective.describe(),
        "solver": {"name": solution.solver, "status": solution.status, "gap": solution.gap,
                   "seconds": 0.0 if reproducible else round(solution.seconds, 6), "notes": solution.notes},
        "assignment": {cost.nodes[v]: cost.tiers[int(t)] for v, t in enumerate(solution.tiers)},
        "precision": {cost.nodes[v]: cost.precisions[int(q)] for v, q in enumerate(solution.precisions)
                      if not graph.node(cost.nodes[v]).is_pseudo},
        "cuts": _cuts(graph, cost, solution),
        "predicted": _predicted(graph, cost, solution, metrics),
        "budgets": _budgets(cost, metrics),
        "baselines": {name: _baseline(model, s) for name, (s, model) in sorted(baselines.items())},
        "backends": {"chosen": dict(zip(cost.tiers, cost.backends)), "tried": backends_tried or [],
                     "rule": "every combination of the tiers' candidate backends solved (those dearer on every "
                             "layer left out); the cheapest kept"},
        "costs": {"source": cost_sources, "latency": "sequential sum, one inference at a time",
                  "energy": "device tier's energy per inference (modelled), waiting included",
                  "throughput": "seconds per inference when pipelined (slowest stage)"},
    }
    return schema.document("plan", SCHEMA_VERSION, _clean(body))


def infeasible_document(model_info: dict[str, Any], deployment_info: dict[str, Any], objective: Objective,
                        solver: str, message: str, unmet: dict[str, dict[str, float]]) -> dict[str, Any]:
    """What `plan --json` prints when no plan exists (`edgepart.infeasible`): `budget`, `limit` and
    `best_reachable` of the first budget that cannot be met even alone (null when only the combination,
    or a pin, fails), and every such budget under `budgets`."""
    binding = next(iter(unmet), None)
    body = {
        "edgepart_version": __version__,
        "status": "infeasible",
        "message": message,
        "model": {"path": model_info["path"], "sha256": model_info["sha256"]},
        "deployment": {"path": deployment_info["path"], "sha256": deployment_info["sha256"]},
        "objective": objective.describe(),
        "solver": solver,
        "budget": binding,
        "limit": unmet[binding]["limit"] if binding else None,
        "best_reachable": unmet[binding]["best_reachable"] if binding else None,
        "budgets": {name: {**entry, "met": False} for name, entry in unmet.items()},
    }
    return schema.document("infeasible", INFEASIBLE_SCHEMA_VERSION, _clean(body))


def _cuts(graph: LayerGraph, cost: CostModel, solution: Solution) -> list[dict[str, Any]]:
    """Per link, the tensors that go up it (with codec and bytes on the wire) and outputs coming down."""
    tiers = solution.tiers
    cuts = []
    for link, name in enumerate(cost.links):
        up, down = [], []
        for t, tensor in enumerate(cost.tensors):
            reach = max((tiers[c] for c in tensor.consumers), default=-1)
            info = graph.tensors[tensor.name]
            if tiers[tensor.producer] <= link < reach:
                codec = cost.codecs[int(solution.codecs[t, link])]
                seconds = cost.transfer_latency[t, link, solution.codecs[t, link]]
                wire = (int(cost.wire_bytes[t, solution.codecs[t, link]]) if cost.wire_bytes is not None
                        else codec_bytes(info, codec))
                up.append({"tensor": tensor.name, "codec": codec, "bytes": wire,
                           "shape": list(info.shape), "seconds": float(seconds)})
            if tensor.is_output and cost.output_tier <= link < tiers[tensor.producer]:
                down.append({"tensor": tensor.name, "bytes": info.nbytes,
                             "seconds": float(cost.return_latency[t, link])})
        cuts.append({"link": name, "from": cost.tiers[link], "to": cost.tiers[link + 1], "up": up, "down": down,
                     "used": bool(tiers.max() > link), "overhead_s": float(cost.link_latency[link])})
    return cuts


def _predicted(graph: LayerGraph, cost: CostModel, solution: Solution, metrics: Metrics) -> dict[str, Any]:
    per_tier = {}
    for k, tier in enumerate(cost.tiers):
        members = [v for v in range(len(cost.nodes))
                   if solution.tiers[v] == k and not graph.node(cost.nodes[v]).is_pseudo]
        per_tier[tier] = {
            "backend": cost.backends[k] if cost.backends else None,
            "layers": len(members),
            "macs": int(sum(graph.node(cost.nodes[v]).macs for v in members)),
            "compute_s": float(metrics.stage_s[0, k]),
            "memory_bytes": float(metrics.memory_bytes[0, k]),
        }
    per_link = {name: {"transfer_s": float(metrics.stage_s[0, len(cost.tiers) + link])}
                for link, name in enumerate(cost.links)}
    return {
        "latency_s": float(metrics.latency_s[0]),
        "energy_j": float(metrics.energy_j[0]),
        "throughput_s": float(metrics.throughput_s[0]),
        "accuracy_drop": float(metrics.accuracy_drop[0]),
        "per_tier": per_tier,
        "per_link": per_link,
    }


def _budgets(cost: CostModel, metrics: Metrics) -> dict[str, Any]:
    budgets: dict[str, Any] = {}
    if cost.latency_budget is not None:
        budgets["latency_s"] = {"limit": cost.latency_budget, "predicted": float(metrics.latency_s[0])}
    if cost.energy_budget is not None:
        budgets["device_energy_j"] = {"limit": cost.energy_budget, "predicted": float(metrics.energy_j[0])}
    if cost.accuracy_budget is not None:
        budgets["accuracy_drop"] = {"limit": cost.accuracy_budget, "predicted": float(metrics.accuracy_drop[0])}
    for k, limit in enumerate(cost.memory_budget):
        if limit is not None:
            budgets[f"memory_bytes.{cost.tiers[k]}"] = {"limit": limit, "predicted": float(metrics.memory_bytes[0, k])}
    for entry in budgets.values():
        entry["met"] = entry["predicted"] <= entry["limit"] * (1 + 1e-9)
    return budgets


def _baseline(cost: CostModel, solution: Solution | None) -> dict[str, Any]:
    if solution is None:
        return {"feasible": False}
    metrics = solution.metrics(cost)
    return {
        "feasible": bool(metrics.feasible(cost)[0]),
        "latency_s": float(metrics.latency_s[0]),
        "energy_j": float(metrics.energy_j[0]),
        "throughput_s": float(metrics.throughput_s[0]),
        "split": {tier: int(np.sum(solution.tiers == k)) for k, tier in enumerate(cost.tiers)},
        "backends": dict(zip(cost.tiers, cost.backends)),
    }


def _clean(value: Any) -> Any:
    """Plain JSON types; floats rounded to 12 significant digits so files do not differ in the last bit."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return float(f"{value:.12g}") if np.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
