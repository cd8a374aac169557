"""CPU tiers' convolutions and matrix products run edgepart's kernel library (OpenBLAS, native/
kernels.c) and give onnxruntime's outputs: one model holding every operator case side by side,
compiled once through edgepart's TVM compiler for x86-64 and once for aarch64 (run under qemu)."""

from __future__ import annotations

import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from edgepart.runtime import emulate
from edgepart.toolchain import compilers, kernel_library, packing, targets
from tests.conftest import make_model, vi

pytestmark = pytest.mark.tvm


def full_tvm_first() -> None:
    """TvmTier imports TVM runtime-only unless TVM is already imported, and a runtime-only TVM stays
    for the rest of the process: tests run after this one in it may need the whole of TVM."""
    import tvm.relax  # noqa: F401, PLC0415
RNG = np.random.default_rng(0)


def _const(name: str, shape) -> object:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _conv(case: str, cin: int, cout: int, k: int, stride: int, pads: list[int], dilation: int = 1, groups: int = 1,
          act: str | None = "relu", bias: bool = True, size: int = 9) -> tuple:
    """A Conv (+ Relu or x * Sigmoid(x)) on a [1, cin, size, size + 3] input (width != height)."""
    x, y = f"x_{case}", f"y_{case}"
    inputs = [x, f"w_{case}"] + ([f"b_{case}"] if bias else [])
    conv_out = f"c_{case}" if act else y
    nodes = [helper.make_node("Conv", inputs, [conv_out], strides=[stride, stride], pads=pads,
                              dilations=[dilation, dilation], group=groups)]
    if act == "relu":
        nodes.append(helper.make_node("Relu", [conv_out], [y]))
    elif act == "silu":
        nodes += [helper.make_node("Sigmoid", [conv_out], [f"s_{case}"]),
                  helper.make_node("Mul", [conv_out, f"s_{case}"], [y])]
    weights = [_const(f"w_{case}", (cout, cin // groups, k, k))] + ([_const(f"b_{case}", (cout,))] if bias else [])
    return nodes, vi(x, [1, cin, size, size + 3]), vi(y, None), weights, 1


def _residual(case: str, bias: bool, act: str | None) -> tuple:
    """A 1x1 Conv (+ bias) whose output adds its own input (+ Relu): ResNet's shortcut, MobileNetV2's
    skip. Packed targets fuse the add and the Relu into the convolution's call."""
    nodes, x, y, weights, calls = _conv(case, 8, 8, 1, 1, [0, 0, 0, 0], act=None, bias=bias)
    summed = f"sum_{case}" if act else f"z_{case}"
    nodes = [*nodes, helper.make_node("Add", [x.name, y.name], [summed])]
    if act:
        nodes.append(helper.make_node("Relu", [summed], [f"z_{case}"]))
    return nodes, x, vi(f"z_{case}", None), weights, calls


def _self_residual(case: str) -> tuple:
    """Conv + bias, then its output added to its own Relu: the add's other operand depends on the
    convolution's result, so the residual pattern must not take the add (ConvNeXt has this shape;
    taking it made a call with two outputs)."""
    nodes, x, y, weights, calls = _conv(case, 8, 8, 1, 1, [0, 0, 0, 0], act=None)
    nodes = [*nodes, helper.make_node("Relu", [y.name], [f"r_{case}"]),
             helper.make_node("Add", [y.name, f"r_{case}"], [f"z_{case}"])]
    return nodes, x, vi(f"z_{case}", None), weights, calls


def _batch_matmul(case: str) -> tuple:
    """MatMul + bias (a dense layer over [4, 7, 24]), then a batch matmul of its [1, 4, 7, 40]
    reshape with its transpose: two offloaded calls."""
    names = {n: f"{n}_{case}" for n in ("x", "w", "b", "m", "a", "shape", "r", "rt", "y")}
    nodes = [helper.make_node("MatMul", [names["x"], names["w"]], [names["m"]]),
             helper.make_node("Add", [names["m"], names["b"]], [names["a"]]),
             helper.make_node("Reshape", [names["a"], names["shape"]], [names["r"]]),
             helper.make_node("Transpose", [names["r"]], [names["rt"]], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", [names["r"], names["rt"]], [names["y"]])]
    weights = [_const(names["w"], (24, 40)), _const(names["b"], (40,)),
               numpy_helper.from_array(np.array([1, 4, 7, 40], np.int64), names["shape"])]
    return nodes, vi(names["x"], [4, 7, 24]), vi(names["y"], None), weights, 2


def _gemm(case: str) -> tuple:
    """Gemm with transB=1, as torch's Linear exports."""
    x, w, b, y = (f"{n}_{case}" for n in "xwby")
    nodes = [helper.make_node("Gemm", [x, w, b], [y], transB=1)]
    return nodes, vi(x, [3, 24]), vi(y, None), [_const(w, (40, 24)), _const(b, (40,))], 1


CASES = {  # name -> (nodes, input, output, initializers, calls it should offload)
    "conv3x3": _conv("conv3x3", 8, 16, 3, 1, [1, 1, 1, 1]),
    "strided": _conv("strided", 8, 16, 3, 2, [1, 1, 1, 1]),
    "asymmetric_pads_stride3": _conv("asymmetric_pads_stride3", 6, 10, 5, 3, [0, 2, 1, 1], act=None),
    "pointwise_no_bias": _conv("pointwise_no_bias", 8, 16, 1, 1, [0, 0, 0, 0], bias=False),
    "pointwise_strided": _conv("pointwise_strided", 8, 16, 1, 2, [0, 0, 0, 0]),
    "depthwise": _conv("depthwise", 12, 12, 3, 1, [1, 1, 1, 1], groups=12),
    "depthwise_stride2_k5": _conv("depthwise_stride2_k5", 12, 12, 5, 2, [2, 2, 2, 2], groups=12),
    "depthwise_multiplier2": _conv("depthwise_multiplier2", 6, 12, 3, 1, [1, 1, 1, 1], groups=6),
    "grouped": _conv("grouped", 12, 18, 3, 1, [1, 1, 1, 1], groups=3),
    "dilated": _conv("dilated", 8, 8, 3, 1, [2, 2, 2, 2], dilation=2),
    "dilated_depthwise_stride2": _conv("dilated_depthwise_stride2", 8, 8, 3, 2, [2, 2, 2, 2], dilation=2, groups=8),
    "silu": _conv("silu", 8, 16, 3, 1, [1, 1, 1, 1], act="silu"),
    "depthwise_silu_no_bias": _conv("depthwise_silu_no_bias", 8, 8, 5, 2, [2, 2, 2, 2], groups=8, act="silu",
                                    bias=False),
    # Winograd F(4x4, 3x3) (native/winograd.c): 32+ channels and 16+ output tiles (compile.winograd)
    "winograd": _conv("winograd", 32, 40, 3, 1, [1, 1, 1, 1], size=16),
    "winograd_no_pads_no_bias": _conv("winograd_no_pads_no_bias", 32, 32, 3, 1, [0, 0, 0, 0], act=None,
                                      bias=False, size=18),
    "winograd_asymmetric_pads": _conv("winograd_asymmetric_pads", 40, 32, 3, 1, [1, 0, 2, 1], act=None, size=17),
    # packed products (native/gemm.c, AVX-512 targets): outputs 70 = 48 + 16 + 6 and 460 = 9 x 48 + 16
    # + 12 wide, so every strip width and the column tail run; 20 and 10 output channels fill part
    # of a panel
    "pointwise_7x10": _conv("pointwise_7x10", 8, 20, 1, 1, [0, 0, 0, 0], size=7),
    "wide_3x3": _conv("wide_3x3", 6, 10, 3, 1, [1, 1, 1, 1], size=20),
    "residual_relu": _residual("residual_relu", bias=True, act="relu"),
    "residual_no_bias": _residual("residual_no_bias", bias=False, act=None),
    "self_residual": _self_residual("self_residual"),
    "batch_matmul": _batch_matmul("batch_matmul"),
    "gemm": _gemm("gemm"),
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """The cases as one model (each its own input and output), its inputs and onnxruntime's outputs."""
    parts = list(CASES.values())
    model = make_model([node for part in parts for node in part[0]], [part[1] for part in parts],
                       [part[2] for part in parts], [w for part in parts for w in part[3]])
    path = tmp_path_factory.mktemp("cpu_kernels") / "cases.onnx"
    path.write_bytes(model.SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [np.random.default_rng(1).standard_normal(i.shape).astype(np.float32) for i in session.get_inputs()]
    expected = session.run(None, {i.name: v for i, v in zip(session.get_inputs(), inputs)})
    return path, inputs, expected


# cases whose convolution runs on packed weights where the target has AVX-512: one group
PACKED = [name for name, case in CASES.items()
          if case[0][0].op_type == "Conv" and all(a.i == 1 for a in case[0][0].attribute if a.name == "group")]


def compile_cases(zoo, preset_name: str, tmp_path):
    path, _, _ = zoo
    preset = targets.resolve(preset_name)
    artifact = compilers.TvmCompiler().compile(path, preset, tmp_path, "cases")
    kernels = artifact.details["kernels"]
    assert kernels["library"].startswith("openblas-static ")
    # every Conv, MatMul and Gemm of every case went to the library, none to TVM's own loops
    assert kernels["offloaded_calls"] == sum(case[4] for case in CASES.values())
    assert kernels["winograd_calls"] == sum(name.startswith("winograd") for name in CASES)
    assert kernels["packed_calls"] == (len(PACKED) if packing.has_avx512(preset.target) else 0)
    return artifact.path


def assert_cases_match(outputs, expected) -> None:
    for name, got, want in zip(CASES, outputs, expected):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=f"case {name}")


needs_x86_library = pytest.mark.skipif(kernel_library.find("x86-64")[0] is None,
                                       reason=f"no kernel library: {kernel_library.find('x86-64')[1]}")
needs_arm_library = pytest.mark.skipif(
    not emulate.available() or kernel_library.find("AArch64")[0] is None,
    reason="no aarch64 cross toolchain or qemu-user" if not emulate.available()
    else f"no aarch64 kernel library: {kernel_library.find('AArch64')[1]}")


@needs_x86_library
def test_x86_kernels_match_onnxruntime(zoo, tmp_path):
    from edgepart.toolchain.tvm_tier import TvmTier

    full_tvm_first()

    library = compile_cases(zoo, "x86-64", tmp_path)
    assert_cases_match(TvmTier(library).run(zoo[1]), zoo[2])
    # OpenBLAS is inside the library: the device needs no BLAS or Fortran runtime of its own
    needed = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    assert "NEEDED" in needed and not any(name in needed for name in ("blas", "gfortran", "lapack"))


@needs_x86_library
@pytest.mark.skipif("avx512f" not in open("/proc/cpuinfo").read(), reason="this CPU has no AVX-512")
def test_packed_kernels_match_onnxruntime(zoo, tmp_path):
    """x86-64-v4: one-group convolutions (1x1, strided, dilated, Winograd) on packed weights
    (native/gemm.c), the rest as at x86-64."""
    from edgepart.toolchain.tvm_tier import TvmTier

    full_tvm_first()

    assert_cases_match(TvmTier(compile_cases(zoo, "x86-64-v4", tmp_path)).run(zoo[1]), zoo[2])


@pytest.mark.arm
@needs_arm_library
def test_aarch64_kernels_match_onnxruntime_under_qemu(zoo, tmp_path):
    library = compile_cases(zoo, "rpi4", tmp_path)
    assert_cases_match(emulate.QemuRunner(library, "cases").run(zoo[1]), zoo[2])


def test_without_the_library_a_tier_builds_with_tvm_kernels_and_says_so(zoo, tmp_path, monkeypatch, caplog):
    """A user without the static OpenBLAS still gets a working tier: one warning, and the manifest's
    build record says no library was linked and why."""
    from edgepart.toolchain.tvm_tier import TvmTier

    full_tvm_first()

    monkeypatch.setattr(kernel_library, "find", lambda machine: (None, "/usr/lib/x/libopenblas.a is missing"))
    path, inputs, expected = zoo
    artifact = compilers.TvmCompiler().compile(path, targets.resolve("x86-64"), tmp_path, "cases")
    assert artifact.details["kernels"] == {"library": None, "offloaded_calls": 0, "winograd_calls": 0,
                                           "packed_calls": 0, "reason": "/usr/lib/x/libopenblas.a is missing"}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "libopenblas.a is missing" in warnings[0] and "TVM's own kernels" in warnings[0]
    assert_cases_match(TvmTier(artifact.path).run(inputs), expected)


def test_armv7_has_no_kernel_library_and_the_reason_is_recorded():
    library, reason = kernel_library.find("ARM")
    assert library is None and "ARM" in reason
