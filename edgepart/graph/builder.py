"""A small ONNX graph builder for example models and tests (CNN and transformer building blocks).

Weights are seeded and deterministic. `weights="empty"` stores only their dims, for counting
the cost of large architectures without allocating them (such a model is for inspection only).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    """Build a graph op by op; each method returns the name of the tensor it produced."""

    def __init__(self, name: str, seed: int = 0, opset: int = 17, weights: str = "random") -> None:
        self.name, self.opset, self.weights = name, opset, weights
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._counter = 0

    # -- plumbing ---------------------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def input(self, name: str, shape: tuple, elem_type: int = TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        self.shapes[name] = tuple(shape)
        return name

    def output(self, tensor: str, elem_type: int = TensorProto.FLOAT) -> str:
        self.outputs.append(helper.make_tensor_value_info(tensor, elem_type, list(self.shapes[tensor])))
        return tensor

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array, name))
        self.shapes[name] = array.shape
        return name

    def weight(self, name: str, shape: tuple[int, ...], fan_in: int) -> str:
        """A float32 weight, He-initialised so activations keep their scale through deep nets."""
        if self.weights == "empty":
            tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(shape))
            self.initializers.append(tensor)
            self.shapes[name] = shape
            return name
        array = self.rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(2.0 / fan_in))
        return self.constant(name, array)

    def bias(self, name: str, size: int) -> str:
        return self.constant(name, (0.1 * self.rng.standard_normal(size)).astype(np.float32))

    def op(self, op_type: str, inputs: list[str], shape: tuple, name: str | None = None, **attrs) -> str:
        name = name or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        self.shapes[name] = tuple(shape)
        return name

    def build(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="edgepart.builder")
        model.ir_version = 8
        if self.weights != "empty":
            onnx.checker.check_model(model)
        return model

    # -- CNN blocks -------------------------------------------------------------------------
    def conv(self, x: str, cout: int, k: int, stride: int = 1, group: int = 1,
             relu: bool = True, name: str | None = None, params: tuple | None = None) -> str:
        """k x k convolution with 'same' padding; `params` = (weight, bias) arrays, else seeded."""
        n, cin, h, w = self.shapes[x]
        name = name or self.fresh("conv")
        pad = k // 2
        out_shape = (n, cout, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        weight, bias = self._params(name, params, (cout, cin // group, k, k), cin // group * k * k, cout)
        y = self.op("Conv", [x, weight, bias], out_shape, name=name,
                    kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group)
        return self.relu(y) if relu else y

    def relu(self, x: str) -> str:
        return self.op("Relu", [x], self.shapes[x])

    def clip6(self, x: str) -> str:
        """ReLU6, as MobileNets use it."""
        lo = self.constant(self.fresh("zero"), np.array(0.0, np.float32))
        hi = self.constant(self.fresh("six"), np.array(6.0, np.float32))
        return self.op("Clip", [x, lo, hi], self.shapes[x])

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b], np.broadcast_shapes(self.shapes[a], self.shapes[b]))

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", [a, b], np.broadcast_shapes(self.shapes[a], self.shapes[b]))

    def pool(self, x: str, kind: str, k: int, stride: int, pad: int = 0) -> str:
        n, c, h, w = self.shapes[x]
        shape = (n, c, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        return self.op(kind, [x], shape, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def global_pool(self, x: str) -> str:
        n, c = self.shapes[x][:2]
        return self.op("GlobalAveragePool", [x], (n, c, 1, 1))

    def flatten(self, x: str) -> str:
        shape = self.shapes[x]
        return self.op("Flatten", [x], (shape[0], math.prod(shape[1:])), axis=1)

    def concat(self, xs: list[str], axis: int = 1) -> str:
        shape = list(self.shapes[xs[0]])
        shape[axis] = sum(self.shapes[x][axis] for x in xs)
        return self.op("Concat", xs, tuple(shape), axis=axis)

    def gemm(self, x: str, cout: int, name: str | None = None, params: tuple | None = None) -> str:
        """x @ W.T + b with W of shape (cout, cin); `params` = (weight, bias) arrays, else seeded."""
        n, cin = self.shapes[x]
        name = name or self.fresh("fc")
        weight, bias = self._params(name, params, (cout, cin), cin, cout)
        return self.op("Gemm", [x, weight, bias], (n, cout), name=name, transB=1)

    def _params(self, name: str, given: tuple | None, shape: tuple, fan_in: int, cout: int) -> tuple[str, str]:
        if given is None:
            return self.weight(f"{name}.weight", shape, fan_in), self.bias(f"{name}.bias", cout)
        weight, bias = given
        assert weight.shape == shape, (name, weight.shape, shape)
        return (self.constant(f"{name}.weight", weight.astype(np.float32)),
                self.constant(f"{name}.bias", bias.astype(np.float32)))

    def softmax(self, x: str, axis: int = -1) -> str:
        return self.op("Softmax", [x], self.shapes[x], axis=axis)

    # -- transformer blocks -----------------------------------------------------------------
    def linear(self, x: str, cout: int, name: str | None = None) -> str:
        """x @ W + b on the last axis (MatMul + Add, as exporters emit it)."""
        cin = self.shapes[x][-1]
        name = name or self.fresh("linear")
        weight = self.weight(f"{name}.weight", (cin, cout), fan_in=cin)
        y = self.op("MatMul", [x, weight], (*self.shapes[x][:-1], cout), name=f"{name}.matmul")
        return self.op("Add", [y, self.bias(f"{name}.bias", cout)], self.shapes[y], name=f"{name}.add")

    def layer_norm(self, x: str) -> str:
        d = self.shapes[x][-1]
        scale = self.constant(self.fresh("ln.scale"), np.ones(d, np.float32))
        shift = self.constant(self.fresh("ln.bias"), np.zeros(d, np.float32))
        return self.op("LayerNormalization", [x, scale, shift], self.shapes[x], axis=-1, epsilon=1e-5)

    def gelu(self, x: str) -> str:
        """GELU as x * 0.5 * (1 + erf(x / sqrt 2)), the decomposition opset 17 exporters emit."""
        inv_sqrt2 = self.constant(self.fresh("inv_sqrt2"), np.array(1 / math.sqrt(2), np.float32))
        one = self.constant(self.fresh("one"), np.array(1.0, np.float32))
        half = self.constant(self.fresh("half"), np.array(0.5, np.float32))
        erf = self.op("Erf", [self.mul(x, inv_sqrt2)], self.shapes[x])
        return self.mul(self.mul(x, self.add(erf, one)), half)

    def reshape(self, x: str, shape: tuple[int, ...]) -> str:
        target = self.constant(self.fresh("shape"), np.array(shape, np.int64))
        return self.op("Reshape", [x, target], shape)

    def transpose(self, x: str, perm: tuple[int, ...]) -> str:
        return self.op("Transpose", [x], tuple(self.shapes[x][p] for p in perm), perm=list(perm))

    def matmul(self, a: str, b: str) -> str:
        sa, sb = self.shapes[a], self.shapes[b]
        batch = np.broadcast_shapes(sa[:-2], sb[:-2])
        return self.op("MatMul", [a, b], (*batch, sa[-2], sb[-1]))

    def attention(self, x: str, heads: int) -> str:
        """Multi-head self-attention with separate Q, K, V projections."""
        batch, seq, d = self.shapes[x]
        head_dim = d // heads

        def split_heads(t: str) -> str:
            return self.transpose(self.reshape(t, (batch, seq, heads, head_dim)), (0, 2, 1, 3))

        q, k, v = (split_heads(self.linear(x, d)) for _ in range(3))
        scores = self.matmul(q, self.transpose(k, (0, 1, 3, 2)))
        scale = self.constant(self.fresh("scale"), np.array(1 / math.sqrt(head_dim), np.float32))
        weights = self.softmax(self.mul(scores, scale))
        context = self.transpose(self.matmul(weights, v), (0, 2, 1, 3))
        return self.linear(self.reshape(context, (batch, seq, d)), d)

    def encoder_layer(self, x: str, heads: int, hidden: int) -> str:
        """Pre-norm transformer encoder layer: x + attn(ln(x)); then + mlp(ln(.))."""
        x = self.add(x, self.attention(self.layer_norm(x), heads))
        mlp = self.linear(self.gelu(self.linear(self.layer_norm(x), hidden)), self.shapes[x][-1])
        return self.add(x, mlp)

    def embedding(self, ids: str, vocab: int, d: int) -> str:
        """Token embedding lookup (Gather on a table), plus a learned position embedding."""
        table = self.constant(self.fresh("embedding"), self.rng.standard_normal((vocab, d), np.float32) * 0.1)
        x = self.op("Gather", [table, ids], (*self.shapes[ids], d), axis=0)
        seq = self.shapes[ids][-1]
        position = self.constant(self.fresh("position"), self.rng.standard_normal((1, seq, d), np.float32) * 0.1)
        return self.add(x, position)

    def mean(self, x: str, axis: int) -> str:
        """Mean over one axis, dropping it (opset 17 ReduceMean takes axes as an attribute)."""
        shape = tuple(s for i, s in enumerate(self.shapes[x]) if i != axis % len(self.shapes[x]))
        return self.op("ReduceMean", [x], shape, axes=[axis], keepdims=0)
