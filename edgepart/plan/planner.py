"""plan(model, deployment) -> plan document: build the cost model, solve, and compare with baselines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepart.compress.sensitivity import Sensitivity
from edgepart.cost import build as cost_build
from edgepart.cost import compression as cost_compression
from edgepart.cost.model import CostModel, Objective
from edgepart.errors import BadInputError, CheckFailedError
from edgepart.graph import LoadedModel
from edgepart.hardware import backends as backend_kinds
from edgepart.hardware.deploy import Deployment
from edgepart.plan import chain, evidence, ilp, solvers
from edgepart.plan.document import infeasible_document, plan_document
from edgepart.plan.ilp import IlpOptions
from edgepart.plan.solution import Solution, best_choices, pin_conflict
from edgepart.profile.document import Profile


@dataclass(frozen=True)
class PlanRequest:
    objective: Objective = Objective("latency")
    solver: str = "auto"
    ilp: IlpOptions = IlpOptions()
    reproducible: bool = False
    profiles: tuple[Profile, ...] = ()  # measured or predicted profiles of this model
    sensitivity: Sensitivity | None = None  # measured on this model
    allow_lossy: bool = False  # lower precisions and lossy codecs even without sensitivity data


def plan(loaded: LoadedModel, deployment: Deployment, request: PlanRequest = PlanRequest()) -> dict:
    """The plan document; CheckFailedError when no plan meets the pins and budgets, its `details` an
    `edgepart.infeasible` report (the budgets that cannot be met and the best values reachable)."""
    deployment, lossy = evidence.restrict(deployment, request.sensitivity is not None, request.allow_lossy)
    _require_a_backend_per_layer(loaded, deployment)
    measured = profile_lookup(request.profiles)
    compression = (cost_compression.from_sensitivity(request.sensitivity, request.allow_lossy)
                   if request.sensitivity else None)
    models = cost_build.variants(loaded.graph, deployment, measured, compression)
    try:
        cost, solution, tried = solve_backends(models, request)
    except CheckFailedError as exc:  # no plan: the report names the budgets that cannot be met
        unmet = {} if pin_conflict(models[0]) else _unmet(models)
        if "precisions_left_out" in lossy or "codecs_left_out" in lossy:
            exc = CheckFailedError(f"{exc} (lossy precisions and codecs were left out: {evidence.WHY}; "
                                   "plan --sensitivity FILE, or --allow-lossy to price them as free)")
        raise CheckFailedError(str(exc), infeasible_document(
            loaded.describe(), describe_deployment(deployment), request.objective, request.solver, str(exc),
            unmet)) from exc
    doc = plan_document(
        loaded.describe(), describe_deployment(deployment, cost.backends), loaded.graph, cost, request.objective,
        solution, _baselines(models, request.objective), cost_sources(deployment, request.profiles, cost.backends),
        request.reproducible, tried,
    )
    doc["lossy"] = lossy
    if request.sensitivity:
        scale, basis = request.sensitivity.interaction()
        doc["accuracy"] = {"sensitivity": {"metric": request.sensitivity.metric,
                                           "data": request.sensitivity.data},
                           "predicted_drop": doc["predicted"]["accuracy_drop"],
                           "note": "sum of per-layer and per-codec drops measured one at a time"
                                   + (f", times {scale:.3g}: a plan's {basis['choices']} choices cost up to "
                                      f"{basis['bound']:.3g} together (upper 95% bound over {basis['samples']} "
                                      f"samples) against {basis['alone']:.3g} alone" if basis else ""),
                           **({"interaction": scale} if basis else {})}
    return doc


def _require_a_backend_per_layer(loaded: LoadedModel, deployment: Deployment) -> None:
    """Each layer needs a tier with a backend that can take its operator (TVM's importer lacks some:
    edgepart.hardware.backends.takes); the cost model keeps layers off tiers that cannot run them,
    and a layer no tier can run is refused here, naming it."""
    for layer in loaded.graph.layers:
        if not any(backend_kinds.takes(b, layer.op_type) for tier in deployment.tiers for b in tier.backends):
            tiers = ", ".join(f"'{t.name}' ({'/'.join(t.backends)})" for t in deployment.tiers)
            where = deployment.path or "the deployment"
            raise BadInputError(f"{where}: node '{layer.name}' ({layer.op_type}) can run on no tier: TVM "
                                f"cannot import {layer.op_type} and the tiers allow {tiers}; allow onnxruntime on a "
                                'CPU tier (backends = ["tvm", "onnxruntime"])')


def solve_backends(models: list[CostModel], request: PlanRequest) -> tuple[CostModel, Solution, list[dict]]:
    """The cheapest plan over every combination of the tiers' backends. A deployment has a few tiers
    and each tier one to three backends left after dominated ones are dropped (cost.build.variants),
    so solving each combination and keeping the best is exact and simple; a joint model would need a
    backend variable per tier multiplying every node's cost. Returns the winner's cost model, its
    solution, and per combination its objective (None: no plan meets the budgets)."""
    best, tried, failure = None, [], None
    for cost in models:
        try:
            solution = solvers.solve(cost, request.objective, request.solver, request.ilp)
        except CheckFailedError as exc:
            failure = failure or exc
            tried.append({"backends": dict(zip(cost.tiers, cost.backends)), "objective": None})
            continue
        value = solution.objective(cost, request.objective)
        tried.append({"backends": dict(zip(cost.tiers, cost.backends)), "objective": value})
        if best is None or value < best[0]:
            best = (value, cost, solution)
    if best is None:
        raise failure
    if len(models) > 1:
        best[2].notes.append(f"backends: {len(models)} combinations solved, the cheapest kept")
    return best[1], best[2], tried


def profile_lookup(profiles: tuple[Profile, ...]) -> cost_build.MeasuredSeconds:
    """Seconds of a layer on a tier running a backend whose (device, backend) has a profile, as a
    tier runs it between requests (its hot time scaled by the profile's idle factor,
    edgepart.profile.idle); None otherwise."""
    by_key = {(profile.device, profile.backend): profile for profile in profiles}

    def seconds(tier, backend, node, precision):
        profile = by_key.get((tier.device.name, backend))
        if profile is None or node.is_pseudo:
            return None
        hot = profile.layer_seconds(precision, node.name)
        return None if hot is None else hot * profile.idle_factor

    return seconds


def _unmet(models: list[CostModel]) -> dict[str, dict[str, float]]:
    """The budgets no combination of backends can meet even alone, with the best value any reaches."""
    per_model = [ilp.unmet_budgets(cost) for cost in models]
    names = [name for name in per_model[0] if all(name in unmet for unmet in per_model)]
    return {name: {"limit": per_model[0][name]["limit"],
                   "best_reachable": min(unmet[name]["best_reachable"] for unmet in per_model)} for name in names}


def _baselines(models: list[CostModel], objective: Objective) -> dict[str, tuple[Solution | None, CostModel]]:
    """Each baseline with its cost model, at the combination of backends that suits it best."""
    best: dict[str, tuple[float, Solution | None, CostModel]] = {}
    for cost in models:
        for name, solution in baselines(cost, objective).items():
            value = np.inf if solution is None else solution.objective(cost, objective)
            if name not in best or value < best[name][0]:
                best[name] = (value, solution, cost)
    return {name: (solution, cost) for name, (_, solution, cost) in best.items()}


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


def describe_deployment(deployment: Deployment, chosen: tuple[str, ...] = ()) -> dict:
    """The deployment as the plan file records it; `backend` per tier is the plan's choice among `backends`."""
    chosen = chosen or cost_build.predicted_backends(deployment)
    return {
        "path": deployment.path,
        "sha256": deployment.sha256,
        "tiers": [{"name": t.name, "device": t.device.name, "target": t.target, "backend": backend,
                   "backends": list(t.backends), "precisions": list(t.precisions), "threads": t.threads}
                  for t, backend in zip(deployment.tiers, chosen)],
        "links": [{"name": link.name, "uplink_bps": link.uplink_bps, "downlink_bps": link.downlink_bps,
                   "rtt_s": link.rtt_s, "radio": link.radio is not None} for link in deployment.links],
        "output_tier": deployment.tiers[deployment.output_tier].name,
    }


def cost_sources(deployment: Deployment, profiles: tuple[Profile, ...] = (),
                 chosen: tuple[str, ...] = ()) -> dict[str, str]:
    """Per tier, where the price of its chosen backend comes from."""
    chosen = chosen or cost_build.predicted_backends(deployment)
    by_key = {(profile.device, profile.backend): profile for profile in profiles}
    sources = {}
    for tier, backend in zip(deployment.tiers, chosen):
        profile = by_key.get((tier.device.name, backend))
        if profile is not None:
            sources[tier.name] = (f"{backend}: profile of '{profile.device}': {profile.method} ("
                                  f"{', '.join(profile.precisions)}; other precisions predicted){_idle_note(profile)}")
            continue
        factor = backend_kinds.factor(backend, tier.device.kind)
        reference = by_key.get((tier.device.name, cost_build.REFERENCE_BACKEND))
        base = (f"the measured onnxruntime profile of '{tier.device.name}'{_idle_note(reference)}"
                if reference is not None
                else f"roofline from device profile '{tier.device.name}' ({tier.device.provenance})")
        sources[tier.name] = (f"{backend}: predicted: {base}" if factor.ratio == 1.0 and backend == "onnxruntime"
                              else f"{backend}: predicted: {base} x {factor.ratio:g} ({backend} over onnxruntime on "
                                   f"a {tier.device.kind}: {factor.source.split(';')[0][:120]})")
    return sources


def _idle_note(profile: Profile) -> str:
    factor = profile.idle_factor
    return f", x {factor:.3f} for a run after {profile.idle_gap_s * 1e3:g} ms idle" if factor > 1 else ""
