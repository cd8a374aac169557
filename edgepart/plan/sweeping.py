"""Sweeps of a real model on a deployment: the plan table over a link's bandwidth, the Pareto front,
and the `edgepart.sweep` document a runtime can index by measured bandwidth."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgepart import schema
from edgepart.cost import build as cost_build
from edgepart.cost.model import CostModel, Objective
from edgepart.graph import LoadedModel
from edgepart.hardware.deploy import Deployment
from edgepart.plan import solvers, sweep
from edgepart.plan.solution import Solution

SCHEMA_VERSION = 1


def at_bandwidth(deployment: Deployment, link: int, uplink_bps: float) -> Deployment:
    links = list(deployment.links)
    links[link] = links[link].with_uplink(uplink_bps)
    return dataclasses.replace(deployment, links=tuple(links))


def sweep_document(loaded: LoadedModel, deployment: Deployment, link: int, low_bps: float, high_bps: float,
                   objective: Objective, solver: str = "auto") -> dict[str, Any]:
    family = sweep.AffineFamily(
        cost_build.build(loaded.graph, at_bandwidth(deployment, link, high_bps)), 1 / high_bps,
        cost_build.build(loaded.graph, at_bandwidth(deployment, link, low_bps)), 1 / low_bps,
    )

    def solve(model: CostModel, goal: Objective) -> Solution:
        return solvers.solve(model, goal, solver)

    segments = sweep.bandwidth_sweep(family, objective, solve, low_bps, high_bps)
    base = cost_build.build(loaded.graph, deployment)
    front = sweep.pareto_front(base, solve) if objective.kind != "throughput" else []
    # Counted as `plan` counts them: real layers, not the graph's input and output nodes.
    layers = np.array([not loaded.graph.node(name).is_pseudo for name in base.nodes])
    return schema.document("sweep", SCHEMA_VERSION, {
        "model": {"path": str(loaded.path), "sha256": loaded.sha256},
        "deployment": {"path": deployment.path, "sha256": deployment.sha256},
        "link": deployment.links[link].name,
        "backends": dict(zip(base.tiers, base.backends)),
        "objective": objective.describe(),
        "range_bps": [low_bps, high_bps],
        "segments": [_segment(family, objective, s, base, layers) for s in segments],
        "pareto": [_pareto_point(base, s, layers) for s in front],
    })


def _segment(family: sweep.AffineFamily, objective: Objective, segment: sweep.Segment,
             base: CostModel, layers: np.ndarray) -> dict[str, Any]:
    plan = segment.solution
    ends = [float(plan.objective(family.at(1 / bw), objective)) for bw in (segment.start, segment.end)]
    return {
        "from_bps": _round(segment.start), "to_bps": _round(segment.end),
        "objective_at_ends": [_round(v) for v in ends],
        "layers_per_tier": _layers_per_tier(base, plan, layers),
        "assignment": {base.nodes[v]: base.tiers[int(t)] for v, t in enumerate(plan.tiers)},
    }


def _pareto_point(model: CostModel, segment: sweep.Segment, layers: np.ndarray) -> dict[str, Any]:
    metrics = segment.solution.metrics(model)
    return {"latency_s": _round(metrics.latency_s[0]), "energy_j": _round(metrics.energy_j[0]),
            "weights_s_per_j": [_round(segment.start), _round(segment.end)],
            "layers_per_tier": _layers_per_tier(model, segment.solution, layers)}


def _layers_per_tier(model: CostModel, solution: Solution, layers: np.ndarray) -> dict[str, int]:
    return {tier: int(np.sum((solution.tiers == k) & layers)) for k, tier in enumerate(model.tiers)}


def _round(value: float) -> float:
    return float(f"{float(value):.12g}")


def plot(doc: dict[str, Any], path: str) -> None:
    """Objective against bandwidth (one colour per plan) and the Pareto front, into an image file."""
    import matplotlib  # noqa: PLC0415 - optional, and slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, segment in enumerate(doc["segments"]):
        xs = np.geomspace(segment["from_bps"], segment["to_bps"], 32)
        lo, hi = segment["objective_at_ends"]
        beta = 1 / xs
        b_lo, b_hi = 1 / segment["from_bps"], 1 / segment["to_bps"]
        ys = lo + (hi - lo) * (beta - b_lo) / (b_hi - b_lo) if b_hi != b_lo else np.full_like(xs, lo)
        split = "/".join(str(n) for n in segment["layers_per_tier"].values())
        left.plot(xs / 1e6, ys * (1e3 if "latency" in doc["objective"] else 1), color=f"C{i % 10}",
                  label=f"layers per tier {split}")
    unit = "ms" if "latency" in doc["objective"] else "J"
    left.set(xscale="log", xlabel=f"uplink of {doc['link']} (Mbit/s)", ylabel=f"{doc['objective']} ({unit})",
             title="optimal plan over bandwidth")
    left.legend(fontsize=7)
    if doc["pareto"]:
        right.plot([p["latency_s"] * 1e3 for p in doc["pareto"]], [p["energy_j"] * 1e3 for p in doc["pareto"]], "o-")
    right.set(xlabel="latency (ms)", ylabel="device energy (mJ)", title="latency-energy Pareto front (supported)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
