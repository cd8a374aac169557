"""LayerGraph: the model as a DAG of layers joined by tensors, with the costs solvers need.

A layer is one ONNX node. Constant nodes, and nodes that only read constants, are folded: their
outputs become parameters of the layers that read them. Graph inputs and outputs are explicit
pseudo-nodes (op types `GraphInput` / `GraphOutput`) so a deployment can pin them to a tier.
A tensor has one producer and any number of consumers: crossing a link, it is sent once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx

from edgepart.graph import ops
from edgepart.graph.load import TensorType

GRAPH_INPUT = "GraphInput"
GRAPH_OUTPUT = "GraphOutput"

# Bytes per element when a float tensor is stored in a given precision.
_PRECISION_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class Tensor:
    """An activation tensor: static shape, dtype, one producer, its consumers (node names)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    producer: str
    consumers: tuple[str, ...]
    value_dependent: bool = False  # its shape changes with input values (edgepart.graph.load.TensorType)

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.elements * _itemsize(self.dtype)

    def bytes_at(self, precision: str) -> int:
        """Size in bytes when a float tensor is carried in `precision` (fp32, fp16, int8)."""
        if not self.dtype.startswith(("float", "bfloat")):
            return self.nbytes
        return self.elements * _PRECISION_BYTES[precision]


@dataclass(frozen=True)
class Node:
    """One layer. Costs: MACs and FLOPs per inference, parameters (count, bytes), output bytes."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    macs: int = 0
    flops: int = 0
    params: int = 0
    param_bytes: int = 0
    output_bytes: int = 0
    onnx_index: int | None = None
    op_class: str = "data_movement"  # see graph.ops.op_class

    @property
    def is_pseudo(self) -> bool:
        return self.op_type in (GRAPH_INPUT, GRAPH_OUTPUT)


@dataclass
class LayerGraph:
    """Nodes in topological order (pseudo-nodes included) and the tensors between them."""

    nodes: tuple[Node, ...]
    tensors: dict[str, Tensor]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    opset: int
    params: int = 0
    param_bytes: int = 0
    # tensors computed from static shapes and constants alone (edgepart.graph.shape_values): constants
    # of every layer that reads them, given to sub-models as initializers
    folded: dict[str, np.ndarray] = field(default_factory=dict)
    _by_name: dict[str, Node] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {node.name: node for node in self.nodes}

    def node(self, name: str) -> Node:
        return self._by_name[name]

    @property
    def layers(self) -> tuple[Node, ...]:
        """The real layers, without the input and output pseudo-nodes."""
        return tuple(node for node in self.nodes if not node.is_pseudo)

    def predecessors(self, name: str) -> list[str]:
        return sorted({self.tensors[t].producer for t in self.node(name).inputs})

    def successors(self, name: str) -> list[str]:
        return sorted({c for t in self.node(name).outputs for c in self.tensors[t].consumers})

    def input_bytes(self, name: str) -> int:
        return sum(self.tensors[t].nbytes for t in self.node(name).inputs)

    def edges(self) -> Iterator[tuple[str, str, str]]:
        """(producer, consumer, tensor) for every use of every tensor."""
        for tensor in self.tensors.values():
            for consumer in tensor.consumers:
                yield tensor.producer, consumer, tensor.name

    def totals(self) -> dict[str, int]:
        layers = self.layers
        return {
            "nodes": len(layers),
            "macs": sum(n.macs for n in layers),
            "flops": sum(n.flops for n in layers),
            "params": self.params,
            "param_bytes": self.param_bytes,
        }


def build(model: onnx.ModelProto, types: dict[str, TensorType],
          shape_values: dict[str, np.ndarray] | None = None) -> LayerGraph:
    """LayerGraph of a model whose tensor types are all known (see load.infer_tensor_types);
    `shape_values`: tensors computed from shapes alone (edgepart.graph.shape_values), folded."""
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    input_names = [vi.name for vi in graph.input if vi.name not in constants]
    values = {k: v for k, v in (shape_values or {}).items() if k not in {o.name for o in graph.output}}
    folded = _fold_constant_nodes(graph.node, constants, set(values))
    names = _NodeNamer()
    nodes: list[Node] = [
        Node(names.take(f"input:{name}"), GRAPH_INPUT, (), (name,), output_bytes=_nbytes(types[name]))
        for name in input_names
    ]
    producer = {n.outputs[0]: n.name for n in nodes}
    params_seen: dict[str, int] = {}  # weight name -> first reader
    for index, onnx_node in enumerate(graph.node):
        if index in folded:
            continue
        node = _layer(onnx_node, index, names.take(onnx_node.name or onnx_node.output[0]), types, constants)
        for weight in (t for t in onnx_node.input if t in constants):
            params_seen.setdefault(weight, index)
        nodes.append(node)
        producer.update({t: node.name for t in node.outputs})
    output_names = [vi.name for vi in graph.output]
    for name in output_names:
        nodes.append(Node(names.take(f"output:{name}"), GRAPH_OUTPUT, (name,), ()))
    tensors = _tensors(nodes, producer, types)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return LayerGraph(
        tuple(nodes),
        tensors,
        tuple(input_names),
        tuple(output_names),
        opset,
        params=sum(_elements(types[w]) for w in params_seen),  # a shared weight counts once
        param_bytes=sum(_nbytes(types[w]) for w in params_seen),
        folded=values,
    )


def implicit_inputs(node: onnx.NodeProto) -> list[str]:
    """The outer-scope tensors the node's subgraphs read (a Scan, Loop or If body may use any tensor
    of the graph around it without naming it as an input): inputs of the node all the same, for
    placing, cutting and extracting it."""
    found: dict[str, None] = {}
    for attribute in node.attribute:
        bodies = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for body in bodies:
            local = {v.name for v in body.input} | {i.name for i in body.initializer}
            for inner in body.node:
                for name in [*inner.input, *implicit_inputs(inner)]:
                    if name and name not in local:
                        found.setdefault(name)
                local.update(inner.output)
    return list(found)


def _fold_constant_nodes(onnx_nodes, constants: set[str], shape_values: set[str]) -> set[int]:
    """Indices of nodes computed from constants alone, or whose outputs are all `shape_values`;
    their outputs join `constants`."""
    folded = set()
    for index, node in enumerate(onnx_nodes):
        outputs = [t for t in node.output if t]
        if outputs and all(t in shape_values for t in outputs):
            folded.add(index)
            constants.update(outputs)
            continue
        reads_only_constants = bool(node.input) and all(t in constants for t in node.input if t)
        has_subgraph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
        random = node.op_type.startswith("Random")
        if node.op_type == "Constant" or (reads_only_constants and not has_subgraph and not random):
            folded.add(index)
            constants.update(t for t in node.output if t)
    return folded


def _layer(onnx_node, index: int, name: str, types: dict[str, TensorType], constants: set[str]) -> Node:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in onnx_node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    shapes = ops.NodeShapes(
        inputs=[types[t].shape if t else None for t in onnx_node.input],
        outputs=[types[t].shape for t in onnx_node.output if t],
        attrs=attrs,
    )
    arithmetic = ops.count(onnx_node.op_type, shapes)
    weights = [t for t in onnx_node.input if t in constants]
    outputs = tuple(t for t in onnx_node.output if t)
    reads = [*onnx_node.input, *implicit_inputs(onnx_node)]
    return Node(
        name=name,
        op_type=onnx_node.op_type,
        inputs=tuple(dict.fromkeys(t for t in reads if t and t not in constants)),
        outputs=outputs,
        macs=arithmetic.macs,
        flops=arithmetic.flops,
        params=sum(_elements(types[w]) for w in weights),
        param_bytes=sum(_nbytes(types[w]) for w in weights),
        output_bytes=sum(_nbytes(types[t]) for t in outputs),
        onnx_index=index,
        op_class=ops.op_class(onnx_node.op_type, shapes),
    )


def _tensors(nodes: list[Node], producer: dict[str, str], types: dict[str, TensorType]) -> dict[str, Tensor]:
    consumers: dict[str, list[str]] = {name: [] for name in producer}
    for node in nodes:
        for tensor in node.inputs:
            consumers[tensor].append(node.name)
    return {
        name: Tensor(name, types[name].shape, types[name].dtype, producer[name], tuple(consumers[name]),
                     types[name].value_dependent)
        for name in producer
    }


class _NodeNamer:
    """Unique, stable node names: the ONNX name, else the first output's name, suffixed on clashes."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def take(self, wanted: str) -> str:
        name, k = wanted, 1
        while name in self._taken:
            k += 1
            name = f"{wanted}#{k}"
        self._taken.add(name)
        return name


def _elements(t: TensorType) -> int:
    return math.prod(t.shape)


def _nbytes(t: TensorType) -> int:
    return _elements(t) * _itemsize(t.dtype)


def _itemsize(dtype: str) -> int:
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 1  # sub-byte and exotic types: count a byte per element
