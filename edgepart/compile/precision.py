"""Apply a plan's per-layer precisions to a tier's sub-model before it is compiled."""

from __future__ import annotations

import onnx

from edgepart.errors import NotAvailableError


def apply(model: onnx.ModelProto, precision_of: dict[str, str], tier: str) -> onnx.ModelProto:
    """fp16 layers through onnxruntime's float16 converter (fp32 layers blocked from conversion,
    inputs and outputs kept fp32, so tiers chain unchanged); int8 comes with issue #5."""
    layers = [n.name for n in model.graph.node]
    chosen = {name: precision_of.get(name, "fp32") for name in layers}
    int8 = sorted(n for n, p in chosen.items() if p == "int8")
    if int8:
        raise NotAvailableError(f"tier '{tier}': int8 layers ({int8[0]}, ...) are not compiled yet (issue #5); "
                                "plan without int8 on this tier")
    half = [n for n, p in chosen.items() if p == "fp16"]
    if not half:
        return model
    from onnxruntime.transformers.float16 import convert_float_to_float16  # noqa: PLC0415 - heavy import

    keep = [n for n, p in chosen.items() if p != "fp16"]
    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep,
                                         disable_shape_infer=True)
    onnx.checker.check_model(converted)
    return converted
