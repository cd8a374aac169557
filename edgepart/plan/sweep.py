"""Sweeps of a real model on a deployment: the plan table over a link's bandwidth, the Pareto front,
and the `edgepart.sweep` document a runtime can index by measured bandwidth (the search itself is
edgepart.plan.envelope's; the picture, edgepart.plan.sweep_plot's)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgepart import schema
from edgepart.cost import build as cost_build
from edgepart.cost.model import CostModel, Objective
from edgepart.graph import LoadedModel
from edgepart.hardware.deploy import Deployment
from edgepart.plan import envelope, evidence, solvers
from edgepart.plan.solution import Solution

SCHEMA_VERSION = 1


def at_bandwidth(deployment: Deployment, link: int, uplink_bps: float) -> Deployment:
    links = list(deployment.links)
    links[link] = links[link].with_uplink(uplink_bps)
    return dataclasses.replace(deployment, links=tuple(links))


def sweep_document(loaded: LoadedModel, deployment: Deployment, link: int, low_bps: float, high_bps: float,
                   objective: Objective, solver: str = "auto") -> dict[str, Any]:
    # a sweep has no accuracy data: its plans keep to lossless choices, as `plan` without it does
    deployment, lossy = evidence.restrict(deployment, has_evidence=False, allow_lossy=False)
    family, segments = sweep_segments(loaded, deployment, link, low_bps, high_bps, objective, solver)

    def solve(model: CostModel, goal: Objective) -> Solution:
        return solvers.solve(model, goal, solver)

    base = cost_build.build(loaded.graph, deployment)
    front = envelope.pareto_front(base, solve) if objective.kind != "throughput" else []
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
        "lossy": lossy,
    })


def sweep_segments(loaded: LoadedModel, deployment: Deployment, link: int, low_bps: float, high_bps: float,
                   objective: Objective, solver: str = "auto") -> tuple[envelope.AffineFamily, list[envelope.Segment]]:
    """The exact segments of the optimal plan over the link's uplink bandwidth, in increasing bandwidth."""
    family = envelope.AffineFamily(
        cost_build.build(loaded.graph, at_bandwidth(deployment, link, high_bps)), 1 / high_bps,
        cost_build.build(loaded.graph, at_bandwidth(deployment, link, low_bps)), 1 / low_bps,
    )

    def solve(model: CostModel, goal: Objective) -> Solution:
        return solvers.solve(model, goal, solver)

    return family, envelope.bandwidth_sweep(family, objective, solve, low_bps, high_bps)


def _segment(family: envelope.AffineFamily, objective: Objective, segment: envelope.Segment,
             base: CostModel, layers: np.ndarray) -> dict[str, Any]:
    plan = segment.solution
    ends = [float(plan.objective(family.at(1 / bw), objective)) for bw in (segment.start, segment.end)]
    return {
        "from_bps": _round(segment.start), "to_bps": _round(segment.end),
        "objective_at_ends": [_round(v) for v in ends],
        "layers_per_tier": _layers_per_tier(base, plan, layers),
        "assignment": {base.nodes[v]: base.tiers[int(t)] for v, t in enumerate(plan.tiers)},
    }


def _pareto_point(model: CostModel, segment: envelope.Segment, layers: np.ndarray) -> dict[str, Any]:
    metrics = segment.solution.metrics(model)
    return {"latency_s": _round(metrics.latency_s[0]), "energy_j": _round(metrics.energy_j[0]),
            "weights_s_per_j": [_round(segment.start), _round(segment.end)],
            "layers_per_tier": _layers_per_tier(model, segment.solution, layers)}


def _layers_per_tier(model: CostModel, solution: Solution, layers: np.ndarray) -> dict[str, int]:
    return {tier: int(np.sum((solution.tiers == k) & layers)) for k, tier in enumerate(model.tiers)}


def _round(value: float) -> float:
    return float(f"{float(value):.12g}")
