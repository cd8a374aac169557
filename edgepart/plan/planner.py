"""plan(model, deployment) -> plan document: build the cost model, solve, and compare with baselines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepart.compress import sensitivity
from edgepart.cost import build as cost_build
from edgepart.cost.model import CostModel, Objective
from edgepart.errors import CheckFailedError
from edgepart.graph import LoadedModel
from edgepart.hardware.deploy import Deployment
from edgepart.plan import chain, ilp, solvers
from edgepart.plan.document import infeasible_document, plan_document
from edgepart.plan.ilp import IlpOptions
from edgepart.plan.solution import Solution, best_choices, pin_conflict


@dataclass(frozen=True)
class PlanRequest:
    objective: Objective = Objective("latency")
    solver: str = "auto"
    ilp: IlpOptions = IlpOptions()
    reproducible: bool = False
    profiles: tuple[dict, ...] = ()  # measured or predicted profile documents of this model
    sensitivity: dict | None = None  # a sensitivity document of this model


def plan(loaded: LoadedModel, deployment: Deployment, request: PlanRequest = PlanRequest()) -> dict:
    """The plan document; CheckFailedError when no plan meets the pins and budgets, its `details` an
    `edgepart.infeasible` report (the budgets that cannot be met and the best values reachable)."""
    measured = profile_lookup(request.profiles)
    compression = sensitivity.compression(request.sensitivity) if request.sensitivity else None
    cost = cost_build.build(loaded.graph, deployment, measured, compression)
    deployment_info = describe_deployment(deployment)
    try:
        solution = solvers.solve(cost, request.objective, request.solver, request.ilp)
    except CheckFailedError as exc:  # no plan: the report names the budgets that cannot be met
        unmet = {} if pin_conflict(cost) else ilp.unmet_budgets(cost)
        raise CheckFailedError(str(exc), infeasible_document(
            loaded.describe(), deployment_info, request.objective, request.solver, str(exc), unmet)) from exc
    doc = plan_document(
        loaded.describe(), deployment_info, loaded.graph, cost, request.objective, solution,
        baselines(cost, request.objective), cost_sources(deployment, request.profiles), request.reproducible,
    )
    if request.sensitivity:
        doc["accuracy"] = {"sensitivity": {"metric": request.sensitivity["metric"],
                                           "data": request.sensitivity["data"]},
                           "predicted_drop": doc["predicted"]["accuracy_drop"],
                           "note": "sum of per-layer and per-codec drops measured one at a time"}
    return doc


def profile_lookup(profiles: tuple[dict, ...]) -> cost_build.MeasuredSeconds:
    """Seconds of a layer on a tier whose device has a profile; None (predict) otherwise."""
    by_device = {doc["device"]: doc for doc in profiles}

    def seconds(tier, node, precision):
        doc = by_device.get(tier.device.name)
        if doc is None or node.is_pseudo:
            return None
        layer = doc["precisions"].get(precision, {}).get("layers", {}).get(node.name)
        return None if layer is None else layer["calibrated_s"]

    return seconds


def baselines(cost: CostModel, objective: Objective) -> dict[str, Solution | None]:
    """Everything on each tier (inputs stay where they are produced), and the best single split."""
    additive = objective if objective.kind != "throughput" else Objective("latency")
    _, precision_of, _, codec_of = best_choices(cost, additive)
    n = len(cost.nodes)
    result: dict[str, Solution | None] = {}
    for k, tier in enumerate(cost.tiers):
        tiers = np.full(n, k)
        for node in cost.unordered:
            tiers[node] = cost.output_tier
        for node, pinned in cost.pinned.items():
            if node not in cost.unordered and cost.node_latency[node, k].min() == 0:  # graph inputs
                tiers[node] = pinned
        result[f"all_{tier}"] = Solution(tiers, precision_of[np.arange(n), tiers], codec_of.copy(), f"all_{tier}")
    if len(cost.tiers) > 1:
        try:
            result["best_single_split"] = chain.solve(cost, additive)
        except CheckFailedError:
            result["best_single_split"] = None
    return result


def describe_deployment(deployment: Deployment) -> dict:
    return {
        "path": deployment.path,
        "sha256": deployment.sha256,
        "tiers": [{"name": t.name, "device": t.device.name, "target": t.target, "backend": t.backend,
                   "precisions": list(t.precisions), "threads": t.threads} for t in deployment.tiers],
        "links": [{"name": link.name, "uplink_bps": link.uplink_bps, "downlink_bps": link.downlink_bps,
                   "rtt_s": link.rtt_s, "radio": link.radio is not None} for link in deployment.links],
        "output_tier": deployment.tiers[deployment.output_tier].name,
    }


def cost_sources(deployment: Deployment, profiles: tuple[dict, ...] = ()) -> dict[str, str]:
    by_device = {doc["device"]: doc for doc in profiles}
    sources = {}
    for tier in deployment.tiers:
        doc = by_device.get(tier.device.name)
        if doc is not None:
            sources[tier.name] = f"profile of '{doc['device']}': {doc['provenance']['method']} " \
                                 f"({', '.join(doc['precisions'])}; other precisions predicted)"
        else:
            sources[tier.name] = (f"predicted: roofline from device profile '{tier.device.name}' "
                                  f"({tier.device.provenance})")
    return sources
