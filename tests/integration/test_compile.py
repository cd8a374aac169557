"""compile and verify end to end: three tiers (aarch64 device, x86-64 edge, CUDA cloud) per example."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepart import graph
from edgepart.runtime import emulate
from edgepart.toolchain import elf
from edgepart.toolchain.cuda_env import FATBIN_MAGIC
from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import EXAMPLE_MODELS, MODELS, make_model, vi

pytestmark = pytest.mark.tvm
needs_cuda_toolkit = pytest.mark.skipif(shutil.which("nvcc") is None and not list(
    __import__("pathlib").Path("/usr/local").glob("cuda*/bin/nvcc")), reason="no nvcc: CUDA tiers cannot be built")
needs_arm = pytest.mark.skipif(not emulate.available(), reason="no aarch64 cross toolchain or qemu-user")


def three_tier_deploy(tmp_path, model_path, cloud_target="cuda-sm90"):
    """Pins the first layers to the device, a layer a third of the way in to the edge and a
    layer two thirds of the way in to the cloud; the solver places the rest."""
    layers = graph.load(model_path).graph.layers
    edge_layer = layers[max(2, len(layers) // 3)].name
    cloud_layer = layers[max(3, 2 * len(layers) // 3)].name
    path = tmp_path / "deploy.toml"
    path.write_text(f"""
[[tier]]
name = "device"
device = "rpi4"
target = "aarch64"
backend = "tvm"
[[tier]]
name = "edge"
device = "xeon-edge-server"
target = "x86-64"
backend = "tvm"
[[tier]]
name = "cloud"
device = "h100"
target = "{cloud_target}"
[[link]]
from = "device"
to = "edge"
preset = "ethernet"
[[link]]
from = "edge"
to = "cloud"
bandwidth = "10 Gbit/s"
rtt = "0.1 ms"
[pins]
first_layers = 2
nodes = {{ "{edge_layer}" = "edge", "{cloud_layer}" = "cloud" }}
""")
    return path


def plan_and_compile(tmp_path, model_path, cloud_target="cuda-sm90"):
    deploy = three_tier_deploy(tmp_path, model_path, cloud_target)
    plan = tmp_path / "plan.json"
    result = edgepart("plan", str(model_path), "--deploy", str(deploy), "-o", str(plan))
    assert result.returncode == 0, result.stderr
    build = tmp_path / "build"
    result = edgepart("compile", str(model_path), "--plan", str(plan), "-o", str(build), "--json")
    assert result.returncode == 0, result.stderr
    return plan, build, json.loads(result.stdout)


@needs_cuda_toolkit
@pytest.mark.arm
@needs_arm
# Two models by default (a CNN and a transformer); every bundled model with -m slow (make test-all).
@pytest.mark.parametrize("path", [p if p.stem in ("digits_cnn", "transformer_encoder") else
                                  pytest.param(p, marks=pytest.mark.slow) for p in EXAMPLE_MODELS],
                         ids=lambda p: p.stem)
def test_three_tier_compile_and_verify(tmp_path, path):
    _, build, manifest = plan_and_compile(tmp_path, path)
    by_name = {t["name"]: t for t in manifest["tiers"]}
    assert set(by_name) == {"device", "edge", "cloud"}
    assert elf.machine(build / by_name["device"]["artifact"]) == "AArch64"
    assert elf.machine(build / by_name["edge"]["artifact"]) == "x86-64"
    cloud = (build / by_name["cloud"]["artifact"]).read_bytes()
    assert FATBIN_MAGIC in cloud and b"__global__" not in cloud  # compiled device code, no source
    assert by_name["cloud"]["build"]["device_code"] == "fatbin"
    result = edgepart("verify", str(build), "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    ran = {t["name"]: t["ran_with"] for t in report["tiers"]}
    assert "qemu" in ran["device"] and ran["edge"].startswith("tvm runtime (cpu")
    assert report["passed"]


@pytest.mark.arm
@pytest.mark.slow
@needs_arm
def test_armv7_library_is_32_bit_arm(tmp_path):
    plan, build, manifest = plan_and_compile(tmp_path, MODELS / "digits_cnn.onnx", cloud_target="x86-64")
    text = (tmp_path / "deploy.toml").read_text().replace('target = "aarch64"', 'target = "armv7"')
    (tmp_path / "deploy.toml").write_text(text)
    edgepart("plan", str(MODELS / "digits_cnn.onnx"), "--deploy", str(tmp_path / "deploy.toml"), "-o", str(plan))
    result = edgepart("compile", str(MODELS / "digits_cnn.onnx"), "--plan", str(plan), "-o", str(build), "--json")
    assert result.returncode == 0, result.stderr
    device = next(t for t in json.loads(result.stdout)["tiers"] if t["name"] == "device")
    assert elf.machine(build / device["artifact"]) == "ARM" and device["verification"] == "check"


def test_tampering_and_escaping_paths_are_refused(tmp_path):
    plan, build, manifest = plan_and_compile(tmp_path, MODELS / "chain_cnn.onnx", cloud_target="x86-64")
    edge = next(t for t in manifest["tiers"] if t["name"] == "edge")
    library = build / edge["artifact"]
    library.write_bytes(library.read_bytes() + b"\0")
    assert_one_line_error(edgepart("verify", str(build)), 2, "does not match the manifest")
    probe = (f"from edgepart.runtime import tier; tier.load({str(build)!r}, 'edge')")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode != 0 and "does not match the manifest" in result.stderr
    doc = json.loads((build / "manifest.json").read_text())
    doc["tiers"][0]["artifact"] = "../../etc/passwd"
    (build / "manifest.json").write_text(json.dumps(doc))
    assert_one_line_error(edgepart("verify", str(build)), 2, "escapes the folder")


def test_compile_refuses_another_models_plan_and_unknown_targets(tmp_path):
    plan, build, _ = plan_and_compile(tmp_path, MODELS / "digits_cnn.onnx", cloud_target="x86-64")
    assert_one_line_error(edgepart("compile", str(MODELS / "chain_cnn.onnx"), "--plan", str(plan), "-o",
                                   str(tmp_path / "other")), 2, "made for model sha256")
    assert not (tmp_path / "other").exists()
    deploy = (tmp_path / "deploy.toml").read_text().replace('target = "x86-64"', 'target = "riscv-toaster"', 1)
    (tmp_path / "bad.toml").write_text(deploy)
    assert_one_line_error(edgepart("plan", str(MODELS / "digits_cnn.onnx"), "--deploy", str(tmp_path / "bad.toml")),
                          2, "unknown target 'riscv-toaster'; presets: x86-64")


def test_a_failed_compile_leaves_the_previous_build(tmp_path, monkeypatch):
    from edgepart.compile import build as build_module
    from edgepart.errors import ToolError
    from edgepart.plan.plan_file import Plan
    from edgepart.toolchain import compilers

    plan, build, _ = plan_and_compile(tmp_path, MODELS / "digits_cnn.onnx", cloud_target="x86-64")
    before = (build / "manifest.json").read_bytes()

    def exploding(self, *args):
        raise ToolError("interrupted")

    monkeypatch.setattr(compilers.TvmCompiler, "compile", exploding)
    with pytest.raises(ToolError):
        build_module.compile_plan(graph.load(MODELS / "digits_cnn.onnx"), Plan.load(plan), build)
    assert (build / "manifest.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".build")] == []


def broken_nvcc(folder):
    """A CUDA toolkit whose nvcc adds a line that is not CUDA to the kernel file, then runs the real one."""
    from edgepart.toolchain import cuda_env

    real = cuda_env.cuda_home()
    (folder / "bin").mkdir(parents=True)
    for entry in real.iterdir():
        if entry.name != "bin":
            (folder / entry.name).symlink_to(entry)
    for tool in (real / "bin").iterdir():
        if tool.name != "nvcc":
            (folder / "bin" / tool.name).symlink_to(tool)
    nvcc = folder / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\n"
                    "for a in \"$@\"; do case \"$a\" in *.cu) sed -i '1i this_is_not_cuda x y;' \"$a\";; esac; done\n"
                    f"exec {real}/bin/nvcc \"$@\"\n")
    nvcc.chmod(0o755)
    return folder


@needs_cuda_toolkit
@pytest.mark.slow
def test_a_broken_cuda_build_names_the_first_compiler_error(tmp_path, monkeypatch):
    """The one-line error quotes nvcc's first error line (not TVM's last), -v prints nvcc's whole
    output, the tier's sub-model and the output stay in BUILD/.failed/, and a later compile may
    build into that folder."""
    deploy = tmp_path / "deploy.toml"
    deploy.write_text('[[tier]]\nname = "cloud"\ndevice = "h100"\ntarget = "cuda-sm90"\n')
    plan, build, model = tmp_path / "plan.json", tmp_path / "build", MODELS / "digits_cnn.onnx"
    assert edgepart("plan", str(model), "--deploy", str(deploy), "-o", str(plan)).returncode == 0
    monkeypatch.setenv("CUDA_PATH", str(broken_nvcc(tmp_path / "cuda")))
    result = edgepart("compile", str(model), "--plan", str(plan), "-o", str(build))
    assert_one_line_error(result, 3, "tier 'cloud' for cuda-sm90", "(1): error", str(build / ".failed" / "cloud"))
    assert (build / ".failed" / "cloud" / "submodel.onnx").is_file()
    assert "this_is_not_cuda" in (build / ".failed" / "cloud" / "compiler.log").read_text()
    verbose = edgepart("compile", str(model), "--plan", str(plan), "-o", str(build), "-v")
    assert verbose.returncode == 3 and "detected in the compilation of" in verbose.stderr
    monkeypatch.delenv("CUDA_PATH")
    assert edgepart("compile", str(model), "--plan", str(plan), "-o", str(build)).returncode == 0
    assert not (build / ".failed").exists()


def test_a_tier_runs_with_the_tvm_runtime_alone(tmp_path):
    _, build, _ = plan_and_compile(tmp_path, MODELS / "chain_cnn.onnx", cloud_target="x86-64")
    probe = f"""
import sys, numpy as np
from edgepart.runtime import tier
t = tier.load({str(build)!r}, 'cloud')
maps = open('/proc/self/maps').read()
assert 'libtvm_compiler' not in maps and 'tvm.relax' not in sys.modules, 'compiler loaded'
print('runtime-only ok')
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0 and "runtime-only ok" in result.stdout, result.stderr


def _one_tier_deploy(tmp_path, target: str, backend: str = "tvm", device: str = "local"):
    path = tmp_path / f"{target}.toml"
    path.write_text(f'[[tier]]\nname = "device"\ndevice = "{device}"\ntarget = "{target}"\nbackend = "{backend}"\n')
    return path


def _compile_one_tier(tmp_path, model_path, target, backend="tvm", device="local"):
    plan, build = tmp_path / "plan.json", tmp_path / "build"
    assert edgepart("plan", str(model_path), "--deploy", str(_one_tier_deploy(tmp_path, target, backend, device)),
                    "-o", str(plan)).returncode == 0
    return edgepart("compile", str(model_path), "--plan", str(plan), "-o", str(build), "--json"), build


@pytest.mark.parametrize("target, expect", [("opencl-adreno", "AArch64"), ("webgpu", None)])
def test_generate_only_targets_are_packaged_and_verified_with_a_stand_in(tmp_path, target, expect):
    if expect == "AArch64" and not emulate.available():
        pytest.skip("no aarch64 cross toolchain")
    result, build = _compile_one_tier(tmp_path, MODELS / "chain_cnn.onnx", target, device="snapdragon-8-gen2")
    assert result.returncode == 0, result.stderr
    tier = json.loads(result.stdout)["tiers"][0]
    assert tier["verification"] == "generate" and "needs" in tier["notes"]
    assert elf.machine(build / tier["artifact"]) == expect
    if expect is None:
        assert "@compute" in (build / tier["artifact"]).read_text()  # WGSL compute shaders
    report = edgepart("verify", str(build), "--json")
    assert report.returncode == 0 and "stand-in" in json.loads(report.stdout)["tiers"][0]["ran_with"]


def _qoperator_model(tmp_path):
    """The digits CNN quantised to onnxruntime's QOperator format (QLinearConv, QGemm): TVM cannot import it."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    images = np.load(MODELS / "digits_calib.npz")["image"][:16]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"image": x[None]} for x in images])

        def get_next(self):
            return next(self.items, None)

    path = tmp_path / "digits_qop.onnx"
    quantize_static(str(MODELS / "digits_cnn.onnx"), str(path), Reader(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return path


def test_an_operator_tvm_cannot_import_is_kept_off_tvm_tiers(tmp_path):
    """TVM cannot import QOperator ops: a deployment whose only tier allows TVM alone is refused at
    plan, naming the node and operator (exit 2); a tier offered both backends is planned with
    onnxruntime, and compile builds it."""
    model = _qoperator_model(tmp_path)
    refused = edgepart("plan", str(model), "--deploy", str(_one_tier_deploy(tmp_path, "x86-64", "tvm")),
                       "-o", str(tmp_path / "plan.json"))
    assert_one_line_error(refused, 2, "QLinearConv", "can run on no tier", "onnxruntime")
    (tmp_path / "both").mkdir()
    deploy = tmp_path / "both" / "deploy.toml"
    deploy.write_text('[[tier]]\nname = "device"\ndevice = "local"\ntarget = "x86-64"\n'
                      'backends = ["tvm", "onnxruntime"]\n')
    plan = tmp_path / "both" / "plan.json"
    assert edgepart("plan", str(model), "--deploy", str(deploy), "-o", str(plan)).returncode == 0
    assert json.loads(plan.read_text())["deployment"]["tiers"][0]["backend"] == "onnxruntime"
    result = edgepart("compile", str(model), "--plan", str(plan), "-o", str(tmp_path / "both" / "build"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tiers"][0]["backend"] == "onnxruntime"


@pytest.mark.slow
def test_tuning_database_is_reused_by_the_next_compile(tmp_path):
    """MetaSchedule tunes every kernel once (minutes); the second compile finds them all recorded."""
    plan = tmp_path / "plan.json"
    deploy = _one_tier_deploy(tmp_path, "x86-64")
    assert edgepart("plan", str(MODELS / "digits_cnn.onnx"), "--deploy", str(deploy), "-o", str(plan)).returncode == 0
    runs = []
    for _ in range(2):
        result = edgepart("compile", str(MODELS / "digits_cnn.onnx"), "--plan", str(plan), "-o", str(tmp_path / "b"),
                          "--tune", "4", "--tuning-db", str(tmp_path / "db"), "--json", timeout=900)
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout)["tiers"][0]["build"]["tuning"])
    assert runs[0]["tuned_now"] == runs[0]["tasks"] > 0 and runs[0]["layout"] == "NHWC"
    assert runs[1]["tuned_now"] == 0 and runs[1]["from_database"] == runs[1]["tasks"]
    database = next((tmp_path / "db").glob("*/database_tuning_record.json")).parent  # best record per kernel only
    lines = [len((database / name).read_text().splitlines()) for name in ("database_workload.json",
                                                                          "database_tuning_record.json")]
    assert lines[1] <= lines[0]
    assert edgepart("verify", str(tmp_path / "b")).returncode == 0


def _conv_zoo():
    """Strided, depthwise, grouped-dilated, biased 1x1 and transposed convolutions, pooling, batch norm."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = []

    def weight(name, *shape):
        weights.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name))
        return name

    nodes = [
        helper.make_node("Conv", ["x", weight("w0", 16, 3, 3, 3)], ["a"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Conv", ["a", weight("w1", 16, 1, 3, 3)], ["b"], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Conv", ["b", weight("w2", 32, 4, 3, 3)], ["c"], pads=[2, 2, 2, 2], group=4, dilations=[2, 2]),
        helper.make_node("Conv", ["c", weight("w3", 8, 32, 1, 1), weight("b3", 8)], ["d"]),
        helper.make_node("ConvTranspose", ["d", weight("w4", 8, 4, 2, 2)], ["e"], strides=[2, 2]),
        helper.make_node("AveragePool", ["e"], ["f"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["f", *(weight(n, 4) for n in ("s", "bb", "mm")), "var"], ["y"]),
    ]
    weights.append(numpy_helper.from_array(np.ones(4, np.float32), "var"))
    graph = helper.make_graph(nodes, "conv_zoo",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_tuned_builds_convert_convolutions_to_channels_last(monkeypatch):
    """The layout tuning uses: NHWC convolutions (transposed ones stay NCHW) computing what
    onnxruntime computes; a conversion TVM cannot lower falls back to the model's own layout."""
    import numpy as np
    import onnxruntime as ort
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from edgepart.toolchain import tvm_worker

    model = _conv_zoo()
    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    fused, layout = tvm_worker.channels_last(from_onnx(model, shape_dict={"x": [1, 3, 32, 32]}), target)
    assert layout == "NHWC" and '"conv2d_nhwc"' in fused.script() and '"group_conv2d_nhwc"' in fused.script()
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    vm = relax.VirtualMachine(tvm.compile(fused, target, relax_pipeline=relax.get_default_pipeline(target)), tvm.cpu())
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0]
    np.testing.assert_allclose(vm["main"](tvm.runtime.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-4)

    monkeypatch.setattr(tvm_worker, "CHANNELS_LAST", {"relax.nn.conv2d": ["NHWC", "NOPE"]})
    _, layout = tvm_worker.channels_last(from_onnx(model, shape_dict={"x": [1, 3, 32, 32]}), target)
    assert layout.startswith("NCHW (channels-last failed")


def test_kernels_get_trials_by_their_share_of_the_flops():
    from edgepart.toolchain.tvm_worker import trials_for

    assert [trials_for(share, 64) for share in (0.4, 0.02, 0.01, 0.005, 0.004, 0.0)] == [64, 64, 16, 16, 8, 8]
    assert [trials_for(share, 4) for share in (0.4, 0.01, 0.0)] == [4, 4, 4]
    assert trials_for(0.01, 16) == 8


def test_byoc_backends_report_coverage_and_refuse_to_build(tmp_path):
    plan = tmp_path / "plan.json"
    deploy = _one_tier_deploy(tmp_path, "cuda-sm90", backend="tensorrt", device="h100")
    assert edgepart("plan", str(MODELS / "chain_cnn.onnx"), "--deploy", str(deploy), "-o", str(plan)).returncode == 0
    report = edgepart("compile", str(MODELS / "chain_cnn.onnx"), "--plan", str(plan), "--byoc-report", "--json")
    assert report.returncode == 0, report.stderr
    tier = json.loads(report.stdout)["tiers"][0]
    assert set(tier["backends"]) == {"tensorrt", "nnapi", "cublas", "cudnn", "cutlass"}
    assert tier["backends"]["tensorrt"]["operator_calls"] == tier["operator_calls"] > 0  # TensorRT takes it all
    assert 0 < tier["backends"]["cudnn"]["operator_calls"] < tier["operator_calls"]  # convolutions only
    result = edgepart("compile", str(MODELS / "chain_cnn.onnx"), "--plan", str(plan), "-o", str(tmp_path / "b"), "-q")
    assert_one_line_error(result, 2, "backend 'tensorrt' has no code generator", f"of {tier['operator_calls']}")
    assert not (tmp_path / "b").exists()


def test_verify_names_bad_inputs_and_compile_refuses_an_incomplete_plan(tmp_path):
    import numpy as np

    plan, build, _ = plan_and_compile(tmp_path, MODELS / "digits_cnn.onnx", cloud_target="x86-64")
    np.savez(tmp_path / "wrong.npz", picture=np.zeros((1, 1, 8, 8), np.float32))
    np.savez(tmp_path / "shape.npz", image=np.zeros((1, 8, 7), np.float32))
    assert_one_line_error(edgepart("verify", str(build), "--inputs", str(tmp_path / "wrong.npz")), 2,
                          "no array named 'image'")
    assert_one_line_error(edgepart("verify", str(build), "--inputs", str(tmp_path / "shape.npz")), 2,
                          "shape.npz: 'image' has shape [1, 8, 7]; expected [1, 1, 8, 8] (one sample)")
    (tmp_path / "empty.json").write_text('{"kind": "edgepart.plan", "schema_version": 1}')
    assert_one_line_error(edgepart("compile", str(MODELS / "digits_cnn.onnx"), "--plan", str(tmp_path / "empty.json")),
                          2, "not a complete plan file")


def test_cut_tensor_names_become_identifiers_for_tvm():
    """A tier whose input is a cut tensor (/conv_proj/Conv_output_0 of a ViT) reaches TVM under a C
    identifier: TVM names CUDA kernel parameters after its inputs, and nvcc failed on
    `float* input_/conv_proj/Conv_output_0_ptr`. Positions, the runtime's contract, stay."""
    from onnx import TensorProto, helper

    from edgepart.toolchain.tvm_worker import identifier_inputs

    nodes = [helper.make_node("Relu", ["/conv_proj/Conv_output_0"], ["y"]),
             helper.make_node("Add", ["y", "mask"], ["z"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("/conv_proj/Conv_output_0", "mask")]
    model = helper.make_model(helper.make_graph(nodes, "tier", inputs,
                                                [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])]))
    renamed = identifier_inputs(model)
    assert renamed == {"/conv_proj/Conv_output_0": "input0_conv_proj_Conv_output_0"}
    assert [i.name for i in model.graph.input] == ["input0_conv_proj_Conv_output_0", "mask"]
    assert model.graph.node[0].input[0] == "input0_conv_proj_Conv_output_0"
    __import__("onnx").checker.check_model(model)


def _plan_choosing_tvm(tmp_path, model_path, backends: str):
    """A one-tier x86-64 plan whose tier allows `backends` and chose TVM (as a plan does where TVM
    is priced cheaper)."""
    deploy, plan = tmp_path / "deploy.toml", tmp_path / "plan.json"
    deploy.write_text(f'[[tier]]\nname = "host"\ndevice = "local"\ntarget = "x86-64"\nbackends = [{backends}]\n')
    assert edgepart("plan", str(model_path), "--deploy", str(deploy), "-o", str(plan)).returncode == 0
    doc = json.loads(plan.read_text())
    doc["deployment"]["tiers"][0]["backend"] = "tvm"
    plan.write_text(json.dumps(doc))
    return plan


def _runtime_gap_and_wrong_import_models(tmp_path):
    """NonZero builds with TVM into a call of relax.run.nonzero, which TVM's runtime lacks;
    LayerNormalization's Mean and InvStdDev outputs import as scalars (TVM 0.27)."""
    nonzero = make_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("NonZero", ["r"], ["y"])],
                         [vi("x", [2, 3])], [vi("y", [2, 6], TensorProto.INT64)], opset=17)
    scale = numpy_helper.from_array(np.ones(3, np.float32), "scale")
    norm = make_model([helper.make_node("LayerNormalization", ["x", "scale"], ["y", "mean", "inv"], axis=-1)],
                      [vi("x", [2, 3])], [vi("y", [2, 3]), vi("mean", [2, 1]), vi("inv", [2, 1])], [scale], opset=17)
    paths = {}
    for name, model in (("nonzero", nonzero), ("layernorm", norm)):
        paths[name] = tmp_path / f"{name}.onnx"
        onnx.save(model, paths[name])
    return paths


@pytest.mark.parametrize("model, operator, reason", [
    pytest.param("nonzero", "NonZero", "relax.run.nonzero", marks=pytest.mark.slow),
    ("layernorm", "LayerNormalization", "output 'inv'")])
def test_a_tvm_library_that_fails_its_check_is_never_shipped(tmp_path, model, operator, reason):
    """Allowed onnxruntime too, the tier is built with it and the manifest says why TVM was refused;
    allowed TVM alone, compile stops in one line naming the operator (exit 3)."""
    path = _runtime_gap_and_wrong_import_models(tmp_path)[model]
    (tmp_path / "both").mkdir()
    plan = _plan_choosing_tvm(tmp_path / "both", path, '"tvm", "onnxruntime"')
    result = edgepart("compile", str(path), "--plan", str(plan), "-o", str(tmp_path / "build"), "--json")
    assert result.returncode == 0, result.stderr
    tier = json.loads(result.stdout)["tiers"][0]
    refused = tier["backend_choice"]["refused"]
    assert tier["backend"] == "onnxruntime" and tier["backend_choice"]["planned"] == "tvm"
    assert [r["backend"] for r in refused] == ["tvm"] and operator in refused[0]["operators"]
    assert reason in refused[0]["reason"] and "refused" in result.stderr
    assert not list((tmp_path / "build" / "host").glob("*.so"))  # the refused library is not shipped
    assert edgepart("verify", str(tmp_path / "build")).returncode == 0
    (tmp_path / "tvm").mkdir()
    plan = _plan_choosing_tvm(tmp_path / "tvm", path, '"tvm"')
    strict = edgepart("compile", str(path), "--plan", str(plan), "-o", str(tmp_path / "tvm" / "build"))
    assert_one_line_error(strict, 3, "tier 'host'", "x86-64", operator, "allows no other backend")


def test_a_checked_tvm_library_records_its_check(tmp_path):
    result, _ = _compile_one_tier(tmp_path, MODELS / "digits_cnn.onnx", "x86-64")
    assert result.returncode == 0, result.stderr
    check = json.loads(result.stdout)["tiers"][0]["backend_choice"]["check"]
    assert check["checked"] and check["inputs"] == "seeded" and check["relative_error"] <= check["tolerance"]


def test_a_tier_output_made_by_shape_comes_back_as_one_array(tmp_path):
    """TVM returns a Shape's output as a tuple of ints; the tier hands it on as one int64 array (it
    came back as one output per dimension, and the check counted too many outputs)."""
    model = make_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Shape", ["r"], ["s"])],
                       [vi("x", [2, 3])], [vi("r", [2, 3]), vi("s", [2], TensorProto.INT64)])
    path = tmp_path / "shape_out.onnx"
    onnx.save(model, path)
    result, build = _compile_one_tier(tmp_path, path, "x86-64")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tiers"][0]["backend_choice"]["check"]["checked"]
    assert edgepart("verify", str(build)).returncode == 0


@needs_arm
@pytest.mark.slow  # 20 s of importing MetaSchedule; tests/integration/test_farm.py's slow test tunes on a board
def test_tuning_candidates_for_an_arm_target_are_linked_here_with_its_cross_compiler():
    """A farm board needs TVM's runtime and no compiler: each candidate reaches it as a shared library
    of the board's architecture, linked here."""
    import tvm
    from tvm import te
    from tvm.s_tir.meta_schedule.builder import BuilderInput

    from edgepart.toolchain import targets, tvm_worker

    a = te.placeholder((64,), name="a")
    doubled = te.compute((64,), lambda i: a[i] * 2.0, name="doubled")
    rpi4 = targets.resolve("rpi4", "test")
    candidate = BuilderInput(tvm.IRModule({"main": te.create_prim_func([a, doubled])}), tvm.target.Target(rpi4.target))
    built = tvm_worker._in_process_builder(rpi4.cc).build([candidate])[0]
    assert built.error_msg is None and built.artifact_path.endswith(".so")
    assert elf.machine(built.artifact_path) == "AArch64"
