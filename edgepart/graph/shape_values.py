"""Shape arithmetic folded to constants: with every shape static, a Shape or Size node's output, and
whatever is computed from it and constants alone, has one value whatever the inputs.

Exporters compute Reshape targets, Split sizes and Range limits from `Shape` (TorchScript's Swin-T,
ViT, BERT). Left as layers, a cut can fall inside that arithmetic, and a tier then receives a shape
as a tensor (TVM's importer refuses a Reshape whose target is a run-time tensor) or needs the
activation the Shape reads from another tier. Folded, the arithmetic is constants of every tier
that reads it: the layer graph does not place it (edgepart.graph.layergraph) and sub-models carry
its values as initializers (edgepart.graph.extract).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

MAX_ELEMENTS = 65_536  # a larger computed constant (a mask, say) stays a layer: it would be weight bytes


def shape_values(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """{tensor: value} for every tensor of the main graph computed from static shapes and constants
    alone, through at least one Shape or Size (constants alone are folded already); {} when there
    is none, or when the reference evaluator cannot compute them (nothing is folded then)."""
    graph = model.graph
    constant = {init.name for init in graph.initializer}
    from_shapes: set[str] = set()
    nodes = []  # the nodes to evaluate, in order; Shape and Size as the constants they are
    for node in graph.node:
        reads = [t for t in node.input if t]
        if node.op_type in ("Shape", "Size") and reads and reads[0] in shapes:
            value = _shape_node_value(node, shapes[reads[0]])
            nodes.append(onnx.helper.make_node("Constant", [], [node.output[0]], value=numpy_helper.from_array(value)))
            from_shapes.add(node.output[0])
        elif node.op_type == "Constant" and not node.input:
            nodes.append(node)
            constant.update(node.output)
        elif reads and all(t in constant or t in from_shapes for t in reads) and _pure(node):
            nodes.append(node)
            (from_shapes if any(t in from_shapes for t in reads) else constant).update(t for t in node.output if t)
    if not from_shapes:
        return {}
    return {name: value for name, value in _evaluate(model, nodes, sorted(from_shapes)).items()
            if value.size <= MAX_ELEMENTS}


def _shape_node_value(node: onnx.NodeProto, shape: tuple[int, ...]) -> np.ndarray:
    if node.op_type == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), np.int64)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    return np.array(shape[slice(start, end)], np.int64)  # Shape's start/end clamp as slicing does


def _pure(node: onnx.NodeProto) -> bool:
    """Deterministic, no subgraph, in the default domain: a node the reference evaluator computes."""
    has_subgraph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
    return node.domain in ("", "ai.onnx") and not has_subgraph and not node.op_type.startswith(("Random", "Bernoulli"))


def _evaluate(model: onnx.ModelProto, nodes: list[onnx.NodeProto], names: list[str]) -> dict[str, np.ndarray]:
    """The values of `names`, computed by onnxruntime from the nodes alone (no inputs: every Shape is
    a constant here). onnx's reference evaluator fails on some exports (BERT's GatherElements)."""
    from edgepart.graph import sessions  # noqa: PLC0415

    read = {t for node in nodes for t in node.input}
    initializers = [init for init in model.graph.initializer if init.name in read]
    outputs = [onnx.helper.make_empty_tensor_value_info(name) for name in names]
    graph = onnx.helper.make_graph(nodes, "shape_values", [], outputs, initializers)
    standalone = onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    try:
        values = sessions.session(standalone).run(None, {})
    except Exception:  # noqa: BLE001 - onnxruntime's own errors: fold nothing, as before
        return {}
    return {name: np.asarray(value) for name, value in zip(names, values)}
