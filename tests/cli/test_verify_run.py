"""verify and run on a build that needs no compiler (onnxruntime tiers): inputs files, versioned
reports, and what a run on a stand-in for the planned device may claim."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS

DIGITS = str(MODELS / "digits_cnn.onnx")
# The device tier is priced as a Raspberry Pi 4 but runs here; the edge tier is this host ("local").
DEPLOY = """
[[tier]]
name = "device"
device = "rpi4"
target = "rpi4"
backend = "onnxruntime"
[[tier]]
name = "edge"
device = "local"
target = "x86-64"
backend = "onnxruntime"
[[link]]
from = "device"
to = "edge"
preset = "ethernet"
[pins]
first_layers = 2
nodes = { fc1 = "edge" }
"""


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ort-build")
    (folder / "deploy.toml").write_text(DEPLOY)
    result = edgepart("plan", DIGITS, "--deploy", str(folder / "deploy.toml"), "-o", str(folder / "plan.json"))
    assert result.returncode == 0, result.stderr
    result = edgepart("compile", DIGITS, "--plan", str(folder / "plan.json"), "-o", str(folder / "build"), "-q")
    assert result.returncode == 0, result.stderr
    return folder / "build"


def test_verify_report_is_versioned(build):
    result = edgepart("verify", str(build), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "edgepart.verify" and report["schema_version"] == 1
    assert report["passed"] and report["samples"] == 1 and report["inputs"] == "seeded"


def test_verify_accuracy_report_is_versioned(build):
    result = edgepart("verify", str(build), "--validate-accuracy", str(MODELS / "digits_test.npz"), "--samples", "20",
                      "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "edgepart.accuracy" and report["schema_version"] == 1 and report["passed"]


@pytest.mark.parametrize("shape, samples", [((1, 1, 8, 8), 1), ((3, 1, 1, 8, 8), 3), ((4, 1, 8, 8), 4)])
def test_verify_inputs_take_one_sample_or_samples_first(build, tmp_path, shape, samples):
    """One sample at the input's shape, (N, *shape), or the calibration files' (N, 1, 8, 8): each sample checked."""
    path = tmp_path / "inputs.npz"
    np.savez(path, image=np.random.default_rng(0).standard_normal(shape))  # float64: cast to the input's type
    result = edgepart("verify", str(build), "--inputs", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["samples"] == samples and report["inputs"].startswith(str(path))


def test_verify_inputs_of_a_wrong_shape_are_one_line_naming_file_array_and_shapes(build, tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, image=np.zeros((2, 8, 7), np.float32))
    assert_one_line_error(edgepart("verify", str(build), "--inputs", str(path)), 2,
                          f"--inputs {path}: 'image' has shape [2, 8, 7]; expected [1, 1, 8, 8] (one sample) "
                          "or [N, 1, 1, 8, 8]")
    assert_one_line_error(edgepart("verify", str(build), "--inputs", str(MODELS / "digits_test.npz"),
                                   "--validate-accuracy", str(MODELS / "digits_test.npz")), 2, "give one")


def test_verify_help_names_the_default_inputs():
    result = edgepart("verify", "--help")
    assert "sample_inputs.npz" in " ".join(result.stdout.split()) and "seeded random inputs)" not in result.stdout


def test_a_tier_run_in_place_of_its_planned_device_is_not_compared(build):
    result = edgepart("run", str(build), "--requests", "5", "--links", "ideal", "--json", "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "edgepart.run" and report["schema_version"] == 1
    device, edge = report["tiers"]["device"], report["tiers"]["edge"]
    assert "rpi4" in device["stand_in"] and device["error"] is None
    assert edge["stand_in"] is None and edge["error"] is not None
    assert report["stand_in_tiers"] == ["device"] and report["error"] is None
    text = edgepart("run", str(build), "--requests", "5", "--links", "ideal", "-q").stdout
    assert "not compared" in text and "stand-in" in text and "% off" not in text


def test_a_library_this_host_cannot_run_gets_a_stand_in_described_with_the_right_article(build):
    from edgepart.compile.manifest import BuiltTier
    from edgepart.runtime.run.report import stand_in
    from edgepart.runtime.runners import runner_for

    tier = next(t for t in json.loads((build / "manifest.json").read_text())["tiers"] if t["name"] == "device")
    tier = {**tier, "backend": "tvm", "runtime_device": "cpu", "elf_machine": "AArch64", "verification": "emulate",
            "target": {**tier["target"], "preset": "aarch64"}}
    runner = runner_for(build, BuiltTier.of(tier, "tier"), emulators={})
    assert runner.description.startswith("onnxruntime stand-in: an aarch64 library cannot run here")
    assert not runner.native
    why = stand_in(BuiltTier.of({**tier, "device": "local"}, "tier"),
                   {"ran_with": runner.description, "native": runner.native})
    assert why.startswith("ran as a stand-in (onnxruntime stand-in: an aarch64 library")


def test_a_tier_priced_for_a_board_is_not_measurable_here_and_this_hosts_tier_is(build):
    manifest = {t["name"]: t for t in json.loads((build / "manifest.json").read_text())["tiers"]}
    assert "'rpi4', not at hand" in manifest["device"]["timing"]["not_measurable"]
    assert manifest["edge"]["timing"]["ratio"] > 0 and manifest["edge"]["priced_s"] > 0
    result = edgepart("verify", str(build), "--json")
    tiers = {t["name"]: t for t in json.loads(result.stdout)["tiers"]}
    assert "rpi4" in tiers["device"]["not_measurable"] and tiers["device"]["ratio"] is None
    assert tiers["edge"]["not_measurable"] is None and tiers["edge"]["ratio"] > 0
    assert "not measurable here" in edgepart("verify", str(build)).stdout


def test_a_model_whose_output_declares_a_symbolic_batch_compiles_and_verifies(tmp_path):
    """torchvision's Swin-T exports its output as [Gemmoutput_dim_0, 1000] with a static input: the
    sub-model's interface gets the static shape edgepart inferred, so the manifest matches it
    (compile refused its own build before)."""
    import onnx

    model = onnx.load(DIGITS)
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "Gemmoutput_dim_0"
    path = tmp_path / "symbolic_output.onnx"
    onnx.save(model, str(path))
    (tmp_path / "deploy.toml").write_text(
        '[[tier]]\nname = "host"\ndevice = "local"\ntarget = "x86-64"\nbackend = "onnxruntime"\n')
    for step in (("plan", str(path), "--deploy", str(tmp_path / "deploy.toml"), "-o", str(tmp_path / "plan.json")),
                 ("compile", str(path), "--plan", str(tmp_path / "plan.json"), "-o", str(tmp_path / "build"), "-q"),
                 ("verify", str(tmp_path / "build"))):
        result = edgepart(*step)
        assert result.returncode == 0, f"{step[0]}: {result.stderr}"


def test_inputs_the_model_cannot_take_are_bad_input_and_nan_inputs_are_run(tmp_path):
    """An integer Mod by zero is onnxruntime's error on the inputs, not a crash (exit 2, one line);
    NaN is data verify passes on (IsNaN must be fed it)."""
    import onnx
    from onnx import TensorProto, helper

    from tests.conftest import make_model, vi

    model = make_model([helper.make_node("Mod", ["a", "b"], ["m"]), helper.make_node("Cast", ["a"], ["f"], to=1),
                        helper.make_node("IsNaN", ["x"], ["n"])],
                       [vi("a", [3], TensorProto.INT64), vi("b", [3], TensorProto.INT64), vi("x", [3])],
                       [vi("m", [3], TensorProto.INT64), vi("f", [3]), vi("n", [3], TensorProto.BOOL)])
    path = tmp_path / "mod.onnx"
    onnx.save(model, path)
    (tmp_path / "deploy.toml").write_text(
        '[[tier]]\nname = "host"\ndevice = "local"\ntarget = "x86-64"\nbackend = "onnxruntime"\n')
    for step in (("plan", str(path), "--deploy", str(tmp_path / "deploy.toml"), "-o", str(tmp_path / "plan.json")),
                 ("compile", str(path), "--plan", str(tmp_path / "plan.json"), "-o", str(tmp_path / "build"), "-q")):
        result = edgepart(*step)
        assert result.returncode == 0, f"{step[0]}: {result.stderr}"
    zero = tmp_path / "zero.npz"
    np.savez(zero, a=np.array([1, 2, 3]), b=np.array([1, 0, 1]), x=np.zeros(3, np.float32))
    assert_one_line_error(edgepart("verify", str(tmp_path / "build"), "--inputs", str(zero)), 2,
                          "onnxruntime cannot run the original model", "modulo by zero")
    fine = tmp_path / "fine.npz"
    np.savez(fine, a=np.array([1, 2, 3]), b=np.array([2, 2, 2]), x=np.array([0, np.nan, np.inf], np.float32))
    assert edgepart("verify", str(tmp_path / "build"), "--inputs", str(fine)).returncode == 0
