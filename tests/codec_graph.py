"""A tensor's codec emulated inside the model (the runtime's arithmetic as ONNX nodes): the whole
model rebuilt with one codec, which the tests hold edgepart's one-session measurement
(edgepart.compress.injection) to. edgepart measured codecs this way before."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def with_codec(model: onnx.ModelProto, tensor: str, codec: str) -> onnx.ModelProto:
    """A copy in which every consumer of `tensor` reads it after `codec` encoded and decoded it."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = list(copy.graph.node)
    first = next(i for i, n in enumerate(nodes) if tensor in n.input)
    coded = f"{tensor}__{codec}"
    for node in nodes:
        for i, name in enumerate(node.input):
            if name == tensor:
                node.input[i] = coded
    if codec == "fp16":
        inserted = [helper.make_node("Cast", [tensor], [f"{coded}_half"], to=TensorProto.FLOAT16, name=f"{coded}_enc"),
                    helper.make_node("Cast", [f"{coded}_half"], [coded], to=TensorProto.FLOAT, name=f"{coded}_dec")]
    else:
        parts = [f"{coded}_q", f"{coded}_scale", f"{coded}_zero"]
        inserted = [helper.make_node("DynamicQuantizeLinear", [tensor], parts, name=f"{coded}_enc"),
                    helper.make_node("DequantizeLinear", parts, [coded], name=f"{coded}_dec")]
    del copy.graph.node[:]
    copy.graph.node.extend(nodes[:first] + inserted + nodes[first:])
    return copy
