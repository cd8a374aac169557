"""A plan's lossy choices together, on the whole model: what they cost at once against the sum of
what each costs alone, the planner's additive model.

Drops measured one at a time do not add up: int8 errors of consecutive layers share their signal
and compound (the real all-MiniLM-L6-v2's 61 int8 and 180 fp16 layers of a 1% plan summed to 0.99%
and cost 1.39% together on the calibration sentences), and a drop measured on a few samples is
itself uncertain (1.58% on 256 held-out sentences). So `sensitivity --confirm plan.json` also runs
the plan's choices together and records, beside their sum, the mean drop and an upper 95% bound
over the samples; the planner scales every drop by the worst bound / sum seen (edgepart.cost.
compression), so the next plan keeps the composed drop, not the sum, within the budget.

Composed as the chain runs it: layers in their precisions (int8 calibrated on the same data), and
each reader on a tier above a tensor's producer reading it through the codecs of the links between.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgepart.compress import codecs
from edgepart.compress import precision as precisions
from edgepart.compress.data import Dataset, run
from edgepart.compress.quantize import Quantizer
from edgepart.compress.scoring import scorer

Z_95 = 1.645  # one-sided: the drop on new samples stays below mean + Z_95 standard errors 95% of the time


@dataclass(frozen=True)
class Composition:
    """precision: node -> fp16 or int8; reads: (tensor, lossy codecs in link order) -> the nodes that
    read the tensor through them; choices: the (layer, precision) and ("tensor:<name>", codec)
    pairs as sensitivity names them."""

    precision: Mapping[str, str]
    reads: Mapping[tuple[str, tuple[str, ...]], frozenset[str]]
    choices: frozenset[tuple[str, str]]


def model_with(model: onnx.ModelProto, composition: Composition, calibration: Dataset) -> onnx.ModelProto:
    """`model` with every choice of `composition` applied: codecs first (on the fp32 model, as the
    tier above quantises what it receives), then int8 layers, then fp16 ones."""
    for (tensor, chain), readers in sorted(composition.reads.items()):
        model = _coded(model, tensor, chain, readers)
    int8 = sorted(n for n, p in composition.precision.items() if p == "int8")
    if int8:
        with Quantizer(model, calibration) as quantizer:
            model = quantizer.quantize(int8)
    half = sorted(n for n, p in composition.precision.items() if p == "fp16")
    return precisions.to_fp16(model, half) if half else model


def cost(model: onnx.ModelProto, composition: Composition, dataset: Dataset, metric: str, alone: float,
         reference: dict[str, np.ndarray] | None = None) -> dict:
    """The composed drop on `dataset` (mean over samples, its upper 95% bound) beside `alone`, the sum
    of the choices' one-at-a-time drops; `reference`: the fp32 outputs on `dataset`, if already run."""
    reference = run(model, dataset) if reference is None else reference
    outputs = run(model_with(model, composition, dataset), dataset)
    drops = per_sample_drops(metric, reference, outputs, dataset.labels)
    spread = float(np.std(drops, ddof=1) / math.sqrt(len(drops))) if len(drops) > 1 else 0.0
    mean = float(np.mean(drops))
    return {"choices": len(composition.choices), "alone": alone, "together": mean,
            "bound": mean + Z_95 * spread, "samples": len(drops)}


def per_sample_drops(metric: str, reference: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
                     labels: np.ndarray | None) -> np.ndarray:
    """Each sample's drop in the metric (the metric's drop is their mean)."""
    count = len(next(iter(reference.values())))
    drops = np.empty(count)
    for i in range(count):
        one = {name: values[i:i + 1] for name, values in reference.items()}
        score = scorer(metric, one, None if labels is None else labels[i:i + 1])
        drops[i] = score(one) - score({name: outputs[name][i:i + 1] for name in reference})
    return drops


def _coded(model: onnx.ModelProto, tensor: str, chain: tuple[str, ...], readers: frozenset[str]) -> onnx.ModelProto:
    """A copy in which `readers` read `tensor` after each codec of `chain` encoded and decoded it
    (the runtime's arithmetic as ONNX nodes: a Cast pair for fp16, DynamicQuantizeLinear and
    DequantizeLinear for int8)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = list(copy.graph.node)
    value = tensor
    inserted = []
    for step, codec in enumerate(chain):
        coded = f"{tensor}__{step}_{codec}"
        if codec == "fp16":
            half = f"{coded}_half"
            inserted += [helper.make_node("Cast", [value], [half], to=TensorProto.FLOAT16, name=f"{coded}_enc"),
                         helper.make_node("Cast", [half], [coded], to=TensorProto.FLOAT, name=f"{coded}_dec")]
        else:
            parts = [f"{coded}_q", f"{coded}_scale", f"{coded}_zero"]
            inserted += [helper.make_node("DynamicQuantizeLinear", [value], parts, name=f"{coded}_enc"),
                         helper.make_node("DequantizeLinear", parts, [coded], name=f"{coded}_dec")]
        value = coded
    for node in nodes:
        if node.name in readers:
            for i, name in enumerate(node.input):
                if name == tensor:
                    node.input[i] = value
    first = min(i for i, node in enumerate(nodes) if node.name in readers)
    del copy.graph.node[:]
    copy.graph.node.extend(nodes[:first] + inserted + nodes[first:])
    return copy


def lossy_chain(codecs_up: list[str]) -> tuple[str, ...]:
    """The lossy parts of the codecs a tensor crossed links in ('int8+zlib' -> 'int8'; raw, zlib: none)."""
    return tuple(codecs.base(c) for c in codecs_up if codecs.base(c) != "raw")
