"""Check a plan file before using it (shared by plan and compile): made for this model and
deployment, every node placed on a known tier in an allowed precision, no data flowing back down
the tiers, and the budgets it claims to meet still met. Errors name the node or budget at fault.
"""

from __future__ import annotations

import numpy as np

from edgepart.cost import build as cost_build
from edgepart.errors import BadInputError, CheckFailedError
from edgepart.graph import GRAPH_OUTPUT, LoadedModel
from edgepart.hardware.deploy import Deployment
from edgepart.plan.plan_file import Plan
from edgepart.plan.solution import Solution


def validate(planned: Plan, loaded: LoadedModel, deployment: Deployment | None = None) -> Solution:
    """Raise BadInputError (wrong model, node, tier, precision, direction) or CheckFailedError (budget)."""
    plan, source = planned, planned.source
    if plan.model_sha256 != loaded.sha256:
        raise BadInputError(f"{source}: made for model sha256 {plan.model_sha256[:12]}, but "
                            f"{loaded.path} has sha256 {loaded.sha256[:12]}; re-run edgepart plan")
    if deployment is not None and deployment.sha256 and plan.deployment_sha256 != deployment.sha256:
        raise BadInputError(f"{source}: made for deployment sha256 {str(plan.deployment_sha256)[:12]}, but "
                            f"{deployment.path} has sha256 {deployment.sha256[:12]}")
    for tier in plan.tiers:
        if tier.backend == "auto" or tier.backend not in tier.candidates:
            raise BadInputError(f"{source}: tier '{tier.name}' has backend {tier.backend!r}, not one the plan chose "
                                "from its candidates; make the plan again with edgepart plan")
    tiers = [t.name for t in plan.tiers]
    allowed = {t.name: set(t.allowed) for t in plan.tiers}
    graph = loaded.graph
    tier_of, precision_of = _placement(plan, graph, tiers, allowed, source)
    for tensor in graph.tensors.values():
        for consumer in tensor.consumers:
            if graph.node(consumer).op_type == GRAPH_OUTPUT:
                continue
            if tier_of[consumer] < tier_of[tensor.producer]:
                raise BadInputError(
                    f"{source}: node '{consumer}' on tier '{tiers[tier_of[consumer]]}' reads '{tensor.name}' from "
                    f"tier '{tiers[tier_of[tensor.producer]]}': data may only flow up the tiers")
    _check_cuts(plan, graph, tiers, tier_of, source)
    solution = Solution(np.array([tier_of[n.name] for n in graph.nodes]), np.zeros(len(graph.nodes), dtype=int),
                        np.zeros((len(graph.tensors), len(tiers) - 1), dtype=int), plan.solver)
    if deployment is not None:
        _check_budgets(plan, loaded, deployment, solution, precision_of, source)
    return solution


def _check_cuts(plan: Plan, graph, tiers: list[str], tier_of: dict[str, int], source: str) -> None:
    """The cuts say what the placement implies: per link, the tensors that go up it and the outputs
    that come down it. Compile cuts the tiers by the placement and wires them by the cuts; a plan
    edited in one and not the other would build tiers that wait for data nobody sends."""
    if len(plan.links) != len(tiers) - 1:
        raise BadInputError(f"{source}: cuts: expected one entry per link ({len(tiers) - 1}), got {len(plan.links)}")
    output_tier = tiers.index(plan.output_tier) if plan.output_tier in tiers else 0
    for link, cut in enumerate(plan.links):
        up, down = set(), set()
        for name, tensor in graph.tensors.items():
            where = tier_of[tensor.producer]
            if where <= link < max((tier_of[c] for c in tensor.consumers), default=-1):
                up.add(name)
            if name in graph.outputs and output_tier <= link < where:
                down.add(name)
        for key, implied in (("up", up), ("down", down)):
            listed = {crossing.tensor for crossing in getattr(cut, key)}
            if listed != implied:
                odd = sorted(map(str, listed ^ implied))[0]
                raise BadInputError(f"{source}: cuts[{link}].{key}: tensor '{odd}' "
                                    f"{'is listed but' if odd in listed else 'is not listed, yet it'} "
                                    f"{'does not cross' if odd in listed else 'crosses'} the link as the "
                                    "assignment places its producer and consumers; make the plan again with "
                                    "edgepart plan")


def _placement(plan: Plan, graph, tiers, allowed, source) -> tuple[dict[str, int], dict[str, str]]:
    assignment = plan.assignment
    unknown = sorted(set(assignment) - {n.name for n in graph.nodes})
    if unknown:
        raise BadInputError(f"{source}: assigns '{unknown[0]}', which is not a node of the model")
    unknown = sorted(plan.precision_nodes - {n.name for n in graph.layers})
    if unknown:
        raise BadInputError(f"{source}: precision: '{unknown[0]}' is not a layer of the model")
    tier_of, precision_of = {}, {}
    for node in graph.nodes:
        if node.name not in assignment:
            raise BadInputError(f"{source}: node '{node.name}' is not placed on any tier")
        tier = assignment[node.name]
        if tier not in tiers:
            raise BadInputError(f"{source}: node '{node.name}' is placed on unknown tier '{tier}'")
        tier_of[node.name] = tiers.index(tier)
        if not node.is_pseudo:
            chosen = plan.precision_of(node.name)
            if chosen not in allowed[tier]:
                raise BadInputError(f"{source}: node '{node.name}' runs in {chosen} on tier '{tier}', which allows "
                                    f"{', '.join(sorted(allowed[tier]))}")
            precision_of[node.name] = chosen
    return tier_of, precision_of


def _check_budgets(plan: Plan, loaded, deployment, solution, precision_of, source) -> None:
    """The placement keeps the deployment's pins and meets its budgets. Memory is recomputed from the
    placement (it needs no profile); latency, energy and accuracy are the plan's own predictions
    (made from profiles this check does not have) held to the deployment's limits. `solution` is
    not changed."""
    cost = cost_build.build(loaded.graph, deployment,
                            backends=tuple(t.backend for t in plan.tiers))
    where = deployment.path or "the deployment"
    codecs = np.zeros_like(solution.codecs)
    codec_index = {c: i for i, c in enumerate(cost.codecs)}
    tensor_index = {t.name: i for i, t in enumerate(cost.tensors)}
    for link, cut in enumerate(plan.links):
        for crossing in cut.up:
            if crossing.codec not in codec_index:
                raise BadInputError(f"{source}: cuts[{link}]: tensor '{crossing.tensor}' uses codec "
                                    f"'{crossing.codec}', which {where} does not offer on that link")
            codecs[tensor_index[crossing.tensor], link] = codec_index[crossing.codec]
    refused = next((n for n in cost.nodes if precision_of.get(n, "fp32") not in cost.precisions), None)
    if refused is not None:
        raise BadInputError(f"{source}: node '{refused}' runs in {precision_of[refused]}, which {where} allows "
                            f"on no tier ({', '.join(cost.precisions)})")
    placed = Solution(solution.tiers.copy(),
                      np.array([cost.precisions.index(precision_of.get(n, "fp32")) for n in cost.nodes]),
                      codecs, solution.solver)
    metrics = placed.metrics(cost)
    if not bool(metrics.ordered[0]):
        raise BadInputError(f"{source}: the placement breaks a pin of {where}")
    predicted = plan.predicted
    checks = [("latency_s", deployment.budgets.latency_s, predicted.latency_s, "ms", 1e3),
              ("device_energy_j", deployment.budgets.device_energy_j, predicted.energy_j, "mJ", 1e3),
              ("accuracy_drop", deployment.budgets.accuracy_drop, predicted.accuracy_drop, "", 1.0)]
    checks += [(f"memory_bytes.{tier}", limit, float(metrics.memory_bytes[0, k]), "bytes", 1.0)
               for k, (tier, limit) in enumerate(zip(cost.tiers, cost.memory_budget))]
    for name, limit, value, unit, scale in checks:
        if limit is not None and value is not None and value > limit * (1 + 1e-9):
            unit = f" {unit}" if unit else ""
            raise CheckFailedError(f"{source}: the plan does not meet budget {name} of {where}: predicted "
                                   f"{value * scale:.4g}{unit}, limit {limit * scale:.4g}{unit}")
