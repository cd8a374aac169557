"""verify's comparison of a tier chain's outputs with onnxruntime's: empty, scalar, wrong-shaped and
NaN outputs give an answer (issue #20 found crashes on each), and every number fits in JSON."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgepart import graph
from edgepart.graph.compare import output_errors


def test_empty_and_scalar_outputs_compare_exactly():
    expected = [{"empty": np.zeros((0, 3), np.float32), "scalar": np.float32(2.0)}]
    got = [{"empty": np.zeros((0, 3), np.float32), "scalar": np.asarray(2.0, np.float32)}]
    errors = output_errors(["empty", "scalar"], expected, got)
    assert errors["empty"]["relative_error"] == 0 and errors["scalar"]["relative_error"] == 0


def test_a_wrong_shape_or_a_stray_nan_is_named_not_a_crash():
    expected = [{"y": np.ones((2, 3), np.float32), "z": np.ones(3, np.float32)}]
    got = [{"y": np.ones((3, 2), np.float32), "z": np.array([1, np.nan, 1], np.float32)}]
    errors = output_errors(["y", "z"], expected, got)
    assert errors["y"]["relative_error"] is None and "shape [3, 2], onnxruntime's [2, 3]" in errors["y"]["problem"]
    assert errors["z"]["relative_error"] is None and "NaN" in errors["z"]["problem"]
    json.dumps(errors, allow_nan=False)


def test_nan_where_onnxruntime_has_nan_too_is_equal():
    both = [{"y": np.array([np.nan, 1.0], np.float32)}]
    assert output_errors(["y"], both, both)["y"]["relative_error"] == 0


def test_a_dimension_of_zero_is_an_empty_tensor_not_a_dynamic_one(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [0, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [0, 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "empty.onnx")
    assert graph.load(tmp_path / "empty.onnx").graph.tensors["x"].shape == (0, 3)


def test_an_attention_mask_may_hold_infinities_but_calibration_data_no_nan(tmp_path):
    from edgepart.errors import BadInputError
    from edgepart.graph.feeds import read_npz

    path = tmp_path / "d.npz"
    np.savez(path, mask=np.array([0.0, -np.inf], np.float32))
    assert np.isneginf(read_npz(str(path), "--data")["mask"][1])
    np.savez(path, x=np.array([np.nan], np.float32))
    with pytest.raises(BadInputError, match="NaN"):
        read_npz(str(path), "--data")
    assert np.isnan(read_npz(str(path), "--inputs", nan_allowed=True)["x"]).all()
    np.savez(path, x=np.array([1e31, -np.inf], np.float32))
    with pytest.raises(BadInputError, match="beyond"):
        read_npz(str(path), "--data")
