"""Apply per-layer precisions to a (sub-)model: int8 layers through static QDQ quantisation on
calibration data, fp16 layers through onnxruntime's float16 converter with every other layer kept
in fp32. Inputs and outputs stay in their original types, so tiers chain unchanged."""

from __future__ import annotations

import onnx

from edgepart.compress.data import Dataset
from edgepart.compress.quantize import Quantizer
from edgepart.errors import BadInputError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def apply(model: onnx.ModelProto, precision_of: dict[str, str], tier: str,
          calibration: Dataset | None = None) -> onnx.ModelProto:
    """`calibration` holds samples of this model's inputs; needed only when a layer is int8."""
    chosen = {n.name: precision_of.get(n.name, "fp32") for n in model.graph.node}
    int8 = sorted(n for n, p in chosen.items() if p == "int8")
    if int8:
        if calibration is None:
            raise BadInputError(f"tier '{tier}': the plan puts {len(int8)} layer(s) in int8 ({int8[0]}, ...); "
                                "pass calibration data with --calibration DATA.npz")
        with Quantizer(model, calibration) as quantizer:
            model = quantizer.quantize(int8)
    half = [n for n, p in chosen.items() if p == "fp16"]
    if half:
        model = to_fp16(model, half)
    onnx.checker.check_model(model)
    return model


def to_fp16(model: onnx.ModelProto, layers: list[str]) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16  # noqa: PLC0415 - heavy import

    wanted = set(layers)
    keep = [n.name for n in model.graph.node if n.name not in wanted or n.op_type in QDQ_OPS]
    typed = onnx.shape_inference.infer_shapes(model)  # the converter places its Casts by value types
    converted = convert_float_to_float16(typed, keep_io_types=True, node_block_list=keep, disable_shape_infer=True)
    return topologically_sorted(converted)


def topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """The converter appends its input Casts at the end; ONNX wants producers before consumers."""
    nodes = list(model.graph.node)
    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    ordered: list[onnx.NodeProto] = []
    while nodes:
        ready = [n for n in nodes if all(i in available for i in n.input)]
        if not ready:  # a cycle or a dangling input: leave the rest as it was for the checker to name
            ordered += nodes
            break
        for node in ready:
            available.update(node.output)
        ordered += ready
        nodes = [n for n in nodes if n not in ready]
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return model
