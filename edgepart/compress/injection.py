"""Each compression choice's accuracy cost from one onnxruntime session of the model.

Measuring a choice used to mean building the whole model with that one change and opening a new
session on it: about 880 sessions for an 86 MB sentence encoder, over 40 minutes. Here the model is
opened once, with an `Add` after every candidate tensor whose other operand is a graph input that
is zero by default; a choice is then one more run with that input holding the choice's
perturbation, the change it makes to that tensor given fp32 everywhere upstream:

- a codec on a tensor: decode(encode(x)) - x with the runtime's own codec arithmetic
  (edgepart.compress.codecs) on the tensor's fp32 values;
- a layer in fp16 or int8: the layer alone, converted as compile converts it (onnxruntime's float16
  converter, static QDQ quantisation calibrated on the layer's own inputs), run on its captured fp32
  inputs, minus its fp32 outputs.

So every run is still "that choice alone, on the whole model", the quantity the planner adds up,
with one session instead of one per choice. The fp32 activations are captured a chunk of tensors at
a time (a ViT-B/16's are gigabytes for 16 samples).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
from onnx import helper

from edgepart.compress import codecs
from edgepart.compress import precision as precisions
from edgepart.compress.data import Dataset, run, session_of
from edgepart.compress.quantize import Quantizer, quantized_nodes
from edgepart.errors import ToolError

NOISE_SUFFIX = "__edgepart_noise"
CAPTURE_BYTES = 512 << 20  # fp32 activations held at once while capturing


class Injectable:
    """The model with a zero-by-default perturbation input after each of `tensors` (name -> shape
    of one sample), opened once; `run` adds the given perturbations and returns the outputs."""

    def __init__(self, model: onnx.ModelProto, tensors: dict[str, tuple[int, ...]]) -> None:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        producers = {out: i for i, node in enumerate(copy.graph.node) for out in node.output}
        inserted: dict[int, list[onnx.NodeProto]] = {}  # after node i (-1: before every node)
        for name, shape in tensors.items():
            noise, summed = name + NOISE_SUFFIX, name + NOISE_SUFFIX + "_sum"
            copy.graph.input.append(helper.make_tensor_value_info(noise, onnx.TensorProto.FLOAT, list(shape)))
            at = producers.get(name, -1)
            if at >= 0:  # the producer writes a private name; the sum takes the tensor's name
                node = copy.graph.node[at]
                node.output[list(node.output).index(name)] = summed
                inserted.setdefault(at, []).append(helper.make_node("Add", [summed, noise], [name],
                                                                    name=name + NOISE_SUFFIX + "_add"))
            else:  # a graph input: its consumers read the sum instead
                for node in copy.graph.node:
                    for i, value in enumerate(node.input):
                        if value == name:
                            node.input[i] = summed
                inserted.setdefault(-1, []).append(helper.make_node("Add", [name, noise], [summed],
                                                                    name=name + NOISE_SUFFIX + "_add"))
        nodes = list(inserted.get(-1, []))
        for i, node in enumerate(copy.graph.node):
            nodes += [node, *inserted.get(i, [])]
        del copy.graph.node[:]
        copy.graph.node.extend(nodes)
        self.session = session_of(copy)
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.zeros = {name + NOISE_SUFFIX: np.zeros(shape, np.float32) for name, shape in tensors.items()}

    def run(self, dataset: Dataset, perturbation: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """{output: [N, ...]} with `perturbation` (tensor -> [N, *shape]) added, every other input zero."""
        perturbation = perturbation or {}
        results: dict[str, list[np.ndarray]] = {name: [] for name in self.outputs}
        feeds = dict(self.zeros)
        try:
            for n, sample in enumerate(dataset.samples()):
                feeds.update({k: v for k, v in sample.items() if k in self.inputs})
                feeds.update({name + NOISE_SUFFIX: delta[n] for name, delta in perturbation.items()})
                for name, value in zip(self.outputs, self.session.run(self.outputs, feeds)):
                    results[name].append(value)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ToolError(f"onnxruntime failed on {dataset.source}: {str(exc).splitlines()[0]}") from None
        return {name: np.stack(values) for name, values in results.items()}


def captured(model: onnx.ModelProto, dataset: Dataset, groups: list[list[str]],
             nbytes: dict[str, int]) -> Iterator[tuple[list[str], dict[str, np.ndarray]]]:
    """For each group of tensors (a layer's inputs and outputs, say), in order: the group and the fp32
    values of its tensors over the samples, captured a chunk of groups per run of the model."""
    chunk: list[list[str]] = []
    size = 0
    for group in [*groups, None]:
        wanted = 0 if group is None else sum(nbytes[name] for name in group) * len(dataset)
        if chunk and (group is None or size + wanted > CAPTURE_BYTES):
            names = sorted({name for each in chunk for name in each})
            values = run(model, dataset, names)
            for each in chunk:
                yield each, {name: values[name] for name in each}
            chunk, size = [], 0
        if group is not None:
            chunk.append(group)
            size += wanted


def codec_delta(values: np.ndarray, codec: str) -> np.ndarray:
    """What the codec changes in each sample of a tensor (decode(encode(x)) - x)."""
    out = np.empty_like(values, dtype=np.float32)
    for n, value in enumerate(values):
        payload, meta = codecs.encode(np.ascontiguousarray(value, dtype=np.float32), codec)
        out[n] = change(codecs.decode(payload, meta).reshape(value.shape), value)
    return out


def change(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """after - before, zero where a value is unchanged (so an infinity kept is no change, not NaN)."""
    with np.errstate(invalid="ignore"):
        return np.where(after == before, np.float32(0), after - before).astype(np.float32)


class LayerAlone:
    """One layer as a model of its own, fed its captured fp32 inputs: what running it in fp16 or int8
    changes in its float outputs. The model and its fp32 outputs are made once for every precision."""

    def __init__(self, model: onnx.ModelProto, node: onnx.NodeProto, weights: dict[str, onnx.TensorProto],
                 inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> None:
        def declared(name: str, value: np.ndarray) -> onnx.ValueInfoProto:
            return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype),
                                                 list(value.shape[1:]))

        graph = helper.make_graph([node], f"{node.name}_alone", [declared(n, v) for n, v in inputs.items()],
                                  [declared(n, v) for n, v in outputs.items()],
                                  [weights[name] for name in node.input if name in weights])
        self.model = helper.make_model(graph, opset_imports=list(model.opset_import))
        self.model.ir_version = model.ir_version
        self.name = node.name
        self.dataset = Dataset(f"the inputs of layer '{node.name}'", inputs, None)
        self.reference = run(self.model, self.dataset)
        self.finite = all(np.isfinite(v).all() for v in [*inputs.values(), *self.reference.values()]
                          if v.dtype.kind == "f")

    def delta(self, precision: str) -> tuple[dict[str, np.ndarray], bool]:
        """The change to each float output in `precision`, and whether the precision applies to the
        layer at all (onnxruntime does not quantise every op; no uint8 range holds an infinity, such
        as an attention mask's -inf, so a layer that reads or makes one stays fp32)."""
        if precision == "int8" and not self.finite:
            return {}, False
        if precision == "int8":
            with Quantizer(self.model, self.dataset) as quantizer:
                variant = quantizer.quantize([self.name])
            if self.name not in quantized_nodes(variant):
                return {}, False
        else:
            variant = precisions.to_fp16(self.model, [self.name])
        changed = run(variant, self.dataset)
        return {name: change(changed[name], value) for name, value in self.reference.items()}, True
