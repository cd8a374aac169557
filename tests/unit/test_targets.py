"""Compile targets: every example's tiers name a target that builds code for the device the plan prices."""

import tomllib

import pytest

from edgepart.hardware.devices import load_device
from edgepart.toolchain import targets
from edgepart.toolchain.compilers import last_error
from tests.conftest import REPO

# The CUDA architecture of each shipped GPU device profile.
GPU_ARCH = {"jetson-nano": "sm_53", "jetson-orin-nano": "sm_87", "h100": "sm_90", "h200": "sm_90"}


def test_gpu_tiers_of_the_examples_build_for_their_device():
    for example in sorted((REPO / "examples").glob("*.toml")):
        for tier in tomllib.loads(example.read_text())["tier"]:
            if load_device(tier["device"]).kind != "gpu":
                continue
            preset = targets.resolve(tier["target"], example.name)
            assert preset.target.get("arch") == GPU_ARCH[tier["device"]], (example.name, tier)


def test_a_failed_tools_reason_is_the_fatal_line_after_a_bare_error():
    stderr = "kernel source ...\nCompilation error:\nnvcc fatal   : Unsupported gpu architecture 'compute_53'\n"
    assert last_error(stderr) == "nvcc fatal   : Unsupported gpu architecture 'compute_53'"
    assert last_error("a\nValueError: bad shape\nb") == "ValueError: bad shape"
    assert last_error("") == "no output"


def test_tvm_import_failures_name_the_onnx_operator(tmp_path):
    from edgepart.toolchain.compilers import import_failure

    missing = "tvm.error.OpNotImplemented: The following operators are not supported for frontend ONNX: LSTM, DFT"
    assert import_failure("", missing, tmp_path / "unused.onnx") == ["DFT", "LSTM"]
    raised = "Error converting operator Attention, with inputs: [x]\n"
    assert import_failure(raised, "KeyError: 'num_heads'", tmp_path / "unused.onnx") == ["Attention"]
    assert import_failure("", "some other failure", tmp_path / "unused.onnx") == []


@pytest.mark.parametrize("positive, negative, expected", [(1, 0, [False, True, False, False]),
                                                          (0, 1, [False, False, True, False]),
                                                          (0, 0, [False, False, False, False])])
def test_isinf_with_one_sign_is_lowered_to_what_tvm_imports_right(positive, negative, expected):
    """TVM's IsInf ignores detect_positive/detect_negative; the rewrite computes what ONNX says."""
    import numpy as np
    import onnx
    from onnx import helper

    from edgepart.graph.sessions import session
    from edgepart.toolchain.lowering import lower_for_tvm
    from tests.conftest import make_model, vi

    model = make_model([helper.make_node("IsInf", ["x"], ["y"], detect_positive=positive, detect_negative=negative)],
                       [vi("x", [4])], [vi("y", [4], onnx.TensorProto.BOOL)])
    notes = lower_for_tvm(model)
    assert len(notes) == 1 and "IsInf" in notes[0] and "IsInf" not in [n.op_type for n in model.graph.node]
    x = np.array([1.0, np.inf, -np.inf, np.nan], np.float32)
    assert session(model).run(None, {"x": x})[0].tolist() == expected
