"""Arithmetic cost of one ONNX node: multiply-accumulates (MACs) and floating-point operations.

Conventions (docs/inspect.md): MACs count the multiply-accumulates of Conv, ConvTranspose, Gemm,
MatMul, Einsum and recurrent layers, the figure papers publish (ResNet-50: 4.09 G).
FLOPs = 2 x MACs + one operation per output element of a bias, plus a per-element estimate
for the other compute ops; pure data movement (Reshape, Transpose, Concat, ...) costs 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Shape = tuple[int, ...]


@dataclass(frozen=True)
class NodeShapes:
    """What counting needs of a node: input and output shapes (None for an absent optional input)."""

    inputs: Sequence[Shape | None]
    outputs: Sequence[Shape]
    attrs: dict


@dataclass(frozen=True)
class Arithmetic:
    macs: int
    flops: int


def count(op_type: str, shapes: NodeShapes) -> Arithmetic:
    """MACs and FLOPs of one node; unknown op types cost one FLOP per output element."""
    if op_type in _MAC_COUNTERS:
        return _MAC_COUNTERS[op_type](shapes)
    if op_type in _DATA_MOVEMENT:
        return Arithmetic(0, 0)
    if op_type in _REDUCING:
        return Arithmetic(0, _elements(shapes.inputs[0]))
    per_element = _FLOPS_PER_ELEMENT.get(op_type, 1)
    if op_type in _POOLING:
        per_element = math.prod(shapes.attrs.get("kernel_shape", [1]))
    return Arithmetic(0, per_element * sum(_elements(s) for s in shapes.outputs))


def op_class(op_type: str, shapes: NodeShapes) -> str:
    """Class of a layer for performance prediction: conv, depthwise, matmul, pool, normalization,
    data_movement or elementwise (devices reach a different fraction of peak on each)."""
    if op_type in ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose"):
        group = shapes.attrs.get("group", 1)
        channels = shapes.inputs[0][1] if shapes.inputs[0] is not None and len(shapes.inputs[0]) > 1 else 0
        return "depthwise" if group > 1 and group == channels else "conv"
    if op_type in _MAC_COUNTERS:
        return "matmul"
    if op_type in _POOLING or op_type in _REDUCING:
        return "pool"
    if "Normalization" in op_type or op_type in ("Softmax", "LogSoftmax", "LRN"):
        return "normalization"
    if op_type in _DATA_MOVEMENT:
        return "data_movement"
    return "elementwise"


def _elements(shape: Shape | None) -> int:
    return math.prod(shape) if shape is not None else 0


def _conv(s: NodeShapes) -> Arithmetic:
    weight, out = s.inputs[1], s.outputs[0]
    macs = _elements(out) * math.prod(weight[1:])
    return Arithmetic(macs, 2 * macs + _bias_flops(s, 2, out))


def _conv_transpose(s: NodeShapes) -> Arithmetic:
    x, weight, out = s.inputs[0], s.inputs[1], s.outputs[0]
    macs = _elements(x) * math.prod(weight[1:])
    return Arithmetic(macs, 2 * macs + _bias_flops(s, 2, out))


def _gemm(s: NodeShapes) -> Arithmetic:
    a, out = s.inputs[0], s.outputs[0]
    k = a[0] if s.attrs.get("transA", 0) else a[1]
    macs = _elements(out) * k
    return Arithmetic(macs, 2 * macs + _bias_flops(s, 2, out))


def _matmul(s: NodeShapes) -> Arithmetic:
    a, out = s.inputs[0], s.outputs[0]
    macs = _elements(out) * a[-1]
    return Arithmetic(macs, 2 * macs)


def _einsum(s: NodeShapes) -> Arithmetic:
    """Every index of the equation is iterated once: MACs = product of all index sizes."""
    operands = s.attrs["equation"].replace(" ", "").split("->")[0].split(",")
    if len(operands) < 2:
        return Arithmetic(0, _elements(s.outputs[0]))
    sizes: dict[str, int] = {}
    broadcast = 1
    for letters, shape in zip(operands, s.inputs):
        named = [c for c in letters if c.isalpha()]
        dims = list(shape)
        if "..." in letters:
            before = sum(c.isalpha() for c in letters[: letters.index("...")])
            rank = len(shape) - len(named)
            broadcast = max(broadcast, math.prod(shape[before:before + rank]))
            dims = dims[:before] + dims[before + rank:]
        for letter, size in zip(named, dims):
            sizes[letter] = max(sizes.get(letter, 1), size)
    macs = math.prod(sizes.values()) * broadcast
    return Arithmetic(macs, 2 * macs)


def _recurrent(gates: int) -> Callable[[NodeShapes], Arithmetic]:
    def count_rnn(s: NodeShapes) -> Arithmetic:
        x, w, r = s.inputs[0], s.inputs[1], s.inputs[2]
        seq, batch = (x[1], x[0]) if s.attrs.get("layout", 0) else (x[0], x[1])
        directions, gated_hidden, input_size = w
        hidden = gated_hidden // gates
        macs = seq * batch * directions * gated_hidden * (input_size + r[2])
        return Arithmetic(macs, 2 * macs + 4 * seq * batch * directions * hidden * gates)

    return count_rnn


def _bias_flops(s: NodeShapes, bias_index: int, out: Shape) -> int:
    has_bias = len(s.inputs) > bias_index and s.inputs[bias_index] is not None
    return _elements(out) if has_bias else 0


_MAC_COUNTERS: dict[str, Callable[[NodeShapes], Arithmetic]] = {
    "Conv": _conv,
    "ConvInteger": _conv,
    "QLinearConv": lambda s: _conv(NodeShapes([s.inputs[0], s.inputs[3]], s.outputs, s.attrs)),
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "QLinearMatMul": _matmul,
    "QGemm": lambda s: _gemm(NodeShapes([s.inputs[0], s.inputs[3]], s.outputs, s.attrs)),
    "Einsum": _einsum,
    "LSTM": _recurrent(4),
    "GRU": _recurrent(3),
    "RNN": _recurrent(1),
}

_DATA_MOVEMENT = {
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather",
    "GatherElements", "GatherND", "Identity", "Shape", "Size", "Cast", "CastLike", "Expand", "Tile",
    "Pad", "DepthToSpace", "SpaceToDepth", "Constant", "ConstantOfShape", "Range", "Dropout",
    "ScatterND", "ScatterElements", "Trilu", "OneHot", "NonZero", "QuantizeLinear", "DequantizeLinear",
}

_REDUCING = {
    "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
    "ReduceProd", "ReduceL2", "ReduceL1", "ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin",
}

_POOLING = {"MaxPool", "AveragePool", "LpPool"}

# Rough operation counts per output element for ops that are more than one add or multiply.
_FLOPS_PER_ELEMENT = {
    "Softmax": 5, "LogSoftmax": 5, "LayerNormalization": 8, "BatchNormalization": 2,
    "InstanceNormalization": 8, "GroupNormalization": 8, "SimplifiedLayerNormalization": 6,
    "Gelu": 8, "Erf": 4, "Sigmoid": 4, "HardSigmoid": 3, "HardSwish": 4, "Tanh": 4, "Exp": 4,
    "Log": 4, "Sqrt": 2, "Pow": 4, "Softplus": 4, "Mish": 8, "Elu": 3, "Selu": 4, "LeakyRelu": 2,
    "PRelu": 2, "Clip": 2, "LRN": 6, "Resize": 4, "Upsample": 4, "GridSample": 8,
}
