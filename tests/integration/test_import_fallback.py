"""A tier TVM cannot import as exported is imported after onnxruntime's constant folding, and the
build says so (TorchScript's ShuffleNetV2 and Swin-T exports need it)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from edgepart.toolchain import compilers, targets
from tests.conftest import make_model, vi
from tests.integration.test_cpu_kernels import full_tvm_first

pytestmark = pytest.mark.tvm


def chunk_model():
    """torch.chunk(x, 2, dim=1) as TorchScript exports it: the split point computed from Shape(x),
    which stops TVM 0.27's constant folding ("emit_te now only supports Tensor that has ShapeExpr
    shape"); then the second half through a ReLU."""
    ints = {"i1": [1], "two": [2], "one": [1], "zero": [0], "axes": [1], "end": [2**62]}
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i1"], ["channels"], axis=0),
             helper.make_node("Div", ["channels", "two"], ["half"]),
             helper.make_node("Mul", ["half", "one"], ["split"]),
             helper.make_node("Slice", ["x", "zero", "split", "axes"], ["a"]),
             helper.make_node("Slice", ["x", "split", "end", "axes"], ["b"]),
             helper.make_node("Relu", ["b"], ["rb"]),
             helper.make_node("Concat", ["a", "rb"], ["y"], axis=1)]
    return make_model(nodes, [vi("x", [1, 8, 4, 4])], [vi("y", [1, 8, 4, 4])],
                      [numpy_helper.from_array(np.array(v, np.int64), name) for name, v in ints.items()])


def test_a_tier_tvm_cannot_import_as_exported_is_folded_first(tmp_path):
    from edgepart.toolchain.tvm_tier import TvmTier

    full_tvm_first()

    path = tmp_path / "chunk.onnx"
    path.write_bytes(chunk_model().SerializeToString())
    artifact = compilers.TvmCompiler().compile(path, targets.resolve("x86-64"), tmp_path, "chunk")
    assert artifact.details["import"].startswith("imported after onnxruntime's constant folding")
    assert "ShapeExpr" in artifact.details["import"]  # TVM's own reason is kept
    x = np.random.default_rng(0).standard_normal((1, 8, 4, 4)).astype(np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(TvmTier(artifact.path).run([x])[0], expected, rtol=1e-6, atol=1e-6)
