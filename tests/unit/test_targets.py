"""Compile targets: every example's tiers name a target that builds code for the device the plan prices."""

import tomllib

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
