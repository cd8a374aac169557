"""Cut a sub-model out of a model by tensor names (onnx.utils.Extractor semantics), with the static
shapes edgepart inferred attached, so every boundary tensor is typed."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx import utils as onnx_utils

from edgepart.graph.layergraph import GRAPH_OUTPUT, LayerGraph, implicit_inputs


def typed(model: onnx.ModelProto, graph: LayerGraph) -> onnx.ModelProto:
    """A copy with a value_info for every activation tensor of `graph`, and the declared ones whose
    shape has an unknown dimension (a model output exported with a symbolic batch) given the static
    shape edgepart inferred: a sub-model's inputs and outputs are then as static as the manifest
    that describes them. The graph's folded shape arithmetic is initializers in it."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if graph.folded:
        kept = [n for n in out.graph.node if not (n.output and all(t in graph.folded for t in n.output if t))]
        del out.graph.node[:]
        out.graph.node.extend(kept)
        out.graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in graph.folded.items())
    declared = [*out.graph.input, *out.graph.output, *out.graph.value_info]
    for vi in declared:
        tensor = graph.tensors.get(vi.name)
        dims = vi.type.tensor_type.shape.dim
        if tensor is not None and vi.type.HasField("tensor_type") and not tensor.value_dependent \
                and not all(d.HasField("dim_value") for d in dims):
            static = onnx.helper.make_tensor_type_proto(vi.type.tensor_type.elem_type, list(tensor.shape))
            vi.type.tensor_type.shape.CopyFrom(static.tensor_type.shape)
    known = {vi.name for vi in declared}
    for tensor in graph.tensors.values():
        if tensor.name not in known:
            elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(tensor.dtype))
            shape = None if tensor.value_dependent else list(tensor.shape)  # the runtime computes it
            out.graph.value_info.append(onnx.helper.make_tensor_value_info(tensor.name, elem, shape))
    return out


def extract(model: onnx.ModelProto, graph: LayerGraph, inputs: list[str], outputs: list[str]) -> onnx.ModelProto:
    """The sub-model computing `outputs` from `inputs`; it passes the ONNX checker."""
    sub = _Extractor(typed(model, graph)).extract_model(inputs, outputs)
    onnx.checker.check_model(sub)
    return sub


class _Extractor(onnx_utils.Extractor):
    """onnx's Extractor, counting what a node's subgraphs read from outside as its inputs: onnx's
    follows named inputs only, and leaves out (or misorders) the producers of the tensors a Scan or
    Loop body reads from the graph around it."""

    def _dfs_search_reachable_nodes(self, node_output_name: str, graph_input_names: set[str],
                                    reachable: set[int]) -> None:
        stack = [node_output_name]
        while stack:
            name = stack.pop()
            index = self.outmap.get(name)
            if name in graph_input_names or index is None or index in reachable:
                continue
            reachable.add(index)
            node = self.graph.node[index]
            stack += [t for t in [*node.input, *implicit_inputs(node)] if t]

    def _collect_reachable_tensors(self, nodes: list[onnx.NodeProto]) -> tuple[list, list]:
        names = {t for node in nodes for t in [*node.input, *implicit_inputs(node), *node.output]}
        return ([self.initializers[t] for t in self.initializers if t in names],
                [self.value_infos[t] for t in self.value_infos if t in names])


def boundary(graph: LayerGraph, layers: list[str]) -> tuple[list[str], list[str]]:
    """The tensors a sub-model of `layers` reads from outside them, and those it must hand on
    (read by a layer outside, or a model output), each sorted."""
    members = set(layers)
    inputs = sorted({t for name in layers for t in graph.node(name).inputs if graph.tensors[t].producer not in members})
    outputs = sorted({
        t for name in layers for t in graph.node(name).outputs
        if t in graph.outputs or any(c not in members and graph.node(c).op_type != GRAPH_OUTPUT
                                     for c in graph.tensors[t].consumers)
    })
    return inputs, outputs
