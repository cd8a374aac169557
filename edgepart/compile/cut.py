"""Cut the model into one sub-model per tier, by tensor names, as a plan places its layers.

A tier's inputs are the tensors its layers read that come from below (or the model's inputs);
its outputs are the tensors it makes that a higher tier reads, and the model outputs it makes.
A tensor a tier only passes on (made below, read above) is forwarded by the runtime, not cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from edgepart.errors import BadInputError
from edgepart.graph import LayerGraph, LoadedModel
from edgepart.graph.extract import boundary, extract
from edgepart.graph.sessions import named_model
from edgepart.plan.plan_file import Plan


@dataclass(frozen=True)
class TierCut:
    tier: str
    index: int
    layers: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    model: onnx.ModelProto


def cut(loaded: LoadedModel, plan: Plan) -> list[TierCut]:
    """One sub-model per tier that runs at least one layer, in tier order; each passes the checker."""
    graph: LayerGraph = loaded.graph
    tiers = [t.name for t in plan.tiers]
    where = {node.name: tiers.index(plan.tier_of(node.name)) for node in graph.layers}
    model = named_model(loaded)
    cuts = []
    for index, tier in enumerate(tiers):
        layers = [n.name for n in graph.layers if where[n.name] == index]
        if not layers:
            continue
        inputs, outputs = boundary(graph, layers)
        try:
            sub = extract(model, graph, inputs, outputs)
        except (onnx.checker.ValidationError, ValueError) as exc:
            raise BadInputError(f"cannot cut tier '{tier}' out of {loaded.path}: {str(exc).splitlines()[0]}") from None
        sub.graph.name = f"{graph_name(loaded)}_{tier}"
        cuts.append(TierCut(tier, index, tuple(layers), tuple(inputs), tuple(outputs), sub))
    return cuts


def graph_name(loaded: LoadedModel) -> str:
    return loaded.path.stem
