"""Rewrites of ONNX operators TVM 0.27's importer takes with the wrong semantics, into operators it
takes right, applied to a tier's model before TVM imports it (edgepart.toolchain.tvm_worker).

- IsInf with detect_positive=0 or detect_negative=0: TVM's converter ignores both attributes and
  flags every infinity. It becomes Equal(x, +inf), Equal(x, -inf), or Equal(x, NaN) (never true).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def lower_for_tvm(model: onnx.ModelProto) -> list[str]:
    """Rewrite `model` in place; the notes for the build record, one per rewritten node."""
    notes = []
    nodes = []
    for index, node in enumerate(model.graph.node):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "IsInf" and (attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)) != (1, 1):
            positive, negative = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
            value = np.inf if positive else -np.inf if negative else np.nan
            stem = f"edgepart_isinf{index}"
            nodes += [helper.make_node("Constant", [], [f"{stem}_value"],
                                       value=numpy_helper.from_array(np.array(value, np.float32))),
                      helper.make_node("CastLike", [f"{stem}_value", node.input[0]], [f"{stem}_like"]),
                      helper.make_node("Equal", [node.input[0], f"{stem}_like"], list(node.output),
                                       name=node.name)]
            notes.append(f"IsInf '{node.name or node.output[0]}' (detect_positive={positive}, "
                         f"detect_negative={negative}) as Equal: TVM ignores both attributes")
        else:
            nodes.append(node)
    if notes:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return notes
