"""Compression end to end on the trained digits CNN: sensitivity -> plan under an accuracy budget ->
compile with int8 layers (QDQ, calibrated per tier) -> verify and validate accuracy on held-out data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS, REPO

pytestmark = pytest.mark.tvm
DIGITS = str(MODELS / "digits_cnn.onnx")
CALIB = str(MODELS / "digits_calib.npz")
TEST = str(MODELS / "digits_test.npz")

DEPLOY = """
[deploy]
output_tier = "device"
codecs = ["raw", "fp16", "int8", "zlib", "fp16+zlib", "int8+zlib"]
[[tier]]
name = "device"
device = "rpi4"
target = "x86-64"
precisions = ["fp32", "int8"]
[[tier]]
name = "edge"
device = "xeon-edge-server"
target = "x86-64"
precisions = ["fp32", "int8"]
[[link]]
from = "device"
to = "edge"
preset = "3g"
[pins]
nodes = {{ "fc1" = "edge" }}
[budgets]
accuracy_drop = "{budget}"
"""


@pytest.fixture(scope="module")
def sens(tmp_path_factory):
    path = tmp_path_factory.mktemp("sens") / "sens.json"
    result = edgepart("sensitivity", DIGITS, "--data", CALIB, "--samples", "90", "-o", str(path), "-q")
    assert result.returncode == 0, result.stderr
    return path


def plan(tmp_path, budget: str, *extra: str):
    deploy = tmp_path / "deploy.toml"
    deploy.write_text(DEPLOY.format(budget=budget))
    out = tmp_path / "plan.json"
    result = edgepart("plan", DIGITS, "--deploy", str(deploy), "-o", str(out), "--solver", "ilp", *extra)
    assert result.returncode == 0, result.stderr
    return out, json.loads(out.read_text())


def test_budgeted_plan_compiles_with_int8_and_holds_on_held_out_data(tmp_path, sens):
    plan_path, doc = plan(tmp_path, "1%", "--sensitivity", str(sens))
    assert "int8" in doc["precision"].values()
    assert doc["accuracy"]["sensitivity"]["metric"]["name"] == "accuracy"
    codecs = {up["codec"] for cut in doc["cuts"] for up in cut["up"]}
    assert codecs and codecs != {"raw"}  # a 3G link: the cut tensor travels compressed
    build = tmp_path / "build"
    result = edgepart("compile", DIGITS, "--plan", str(plan_path), "-o", str(build), "--calibration", CALIB,
                      "--json", "-q")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["tiers"][0]["precisions"].get("int8", 0) > 0
    assert manifest["accuracy"]["budget"] == pytest.approx(0.01)
    assert (build / "sample_inputs.npz").is_file()
    result = edgepart("verify", str(build), "--json", "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["inputs"].startswith("sample_inputs.npz")
    # judged by what the int8 choices cost when onnxruntime runs the same sub-models and codecs
    allowed = report["tolerance"]
    assert allowed["precision"] == "int8" and 0 < allowed["measured_cost"] < 0.5 and "int8" in allowed["basis"]
    assert allowed["relative_error"] == pytest.approx(max(1e-4, 2 * allowed["measured_cost"]))
    result = edgepart("verify", str(build), "--validate-accuracy", TEST, "--json", "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["data"]["samples"] == 540 and report["measured_drop"] <= 0.01
    assert report["fp32"] == pytest.approx(0.9852, abs=1e-3)
    # the int8 build as tier processes over its 3G link: real digits in, every result checked
    result = edgepart("run", str(build), "--requests", "12", "--inputs", TEST, "--json", "-q")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["completed"] == 12


def test_int8_plan_without_calibration_is_refused(tmp_path, sens):
    plan_path, _ = plan(tmp_path, "2%", "--sensitivity", str(sens))
    result = edgepart("compile", DIGITS, "--plan", str(plan_path), "-o", str(tmp_path / "b"))
    assert_one_line_error(result, 2, "int8", "--calibration")
    assert not (tmp_path / "b").exists()


def test_without_sensitivity_the_plan_stays_lossless_and_says_why(tmp_path):
    """The no-evidence rule (issue #19): int8 layers and lossy codecs allowed by the deployment, a 3G
    link that makes them attractive, no accuracy data: fp32 and lossless codecs only, the plan's
    `lossy` record and --explain name what was left out; --allow-lossy takes them and says so."""
    _, doc = plan(tmp_path, "1%")
    assert set(doc["precision"].values()) == {"fp32"}
    assert {up["codec"] for cut in doc["cuts"] for up in cut["up"]} <= {"raw", "zlib"}
    assert doc["lossy"]["allowed"] is False and doc["lossy"]["precisions_left_out"] == {"device": ["int8"],
                                                                                         "edge": ["int8"]}
    assert set(doc["lossy"]["codecs_left_out"]) == {"fp16", "int8", "fp16+zlib", "int8+zlib"}
    deploy = tmp_path / "deploy.toml"
    explained = edgepart("plan", DIGITS, "--deploy", str(deploy), "--solver", "ilp", "--explain")
    assert explained.returncode == 0 and "lossy choices left out" in explained.stdout
    assert "no sensitivity data" in explained.stdout and "--allow-lossy" in explained.stdout
    _, doc = plan(tmp_path, "1%", "--allow-lossy")
    assert "int8" in doc["precision"].values() and doc["lossy"]["allowed"] is True
    assert "--allow-lossy" in doc["lossy"]["ground"]


def test_measured_drop_over_budget_exits_1_with_both_numbers(tmp_path):
    """Planned without sensitivities, int8 taken as free (--allow-lossy), under a 0% budget; the
    cosine metric on unlabelled held-out data then measures a real drop."""
    plan_path, _ = plan(tmp_path, "0%", "--allow-lossy")
    build = tmp_path / "build"
    assert edgepart("compile", DIGITS, "--plan", str(plan_path), "-o", str(build), "--calibration", CALIB,
                    "-q").returncode == 0
    unlabelled = tmp_path / "held_out.npz"
    with np.load(TEST) as archive:
        np.savez(unlabelled, image=archive["image"][:50])
    result = edgepart("verify", str(build), "--validate-accuracy", str(unlabelled))
    assert_one_line_error(result, 1, "accuracy budget exceeded", "measured drop", "predicted 0.00%")


def test_sensitivity_of_another_model_is_refused(tmp_path, sens):
    deploy = tmp_path / "deploy.toml"
    deploy.write_text(DEPLOY.format(budget="1%"))
    result = edgepart("plan", str(MODELS / "chain_cnn.onnx"), "--deploy", str(deploy), "--sensitivity", str(sens))
    assert_one_line_error(result, 2, str(sens), "549ecc0e3f7a")


def test_sensitivity_bad_data_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, pixels=np.zeros((2, 64), np.float32))
    result = edgepart("sensitivity", DIGITS, "--data", str(bad))
    assert_one_line_error(result, 2, str(bad), "no array named 'image'")
    assert REPO.is_dir()


def test_choices_a_partial_sensitivity_file_does_not_cover_are_left_out(tmp_path, sens):
    """A measurement limited to some layers (sensitivity --layers / --max-seconds) is evidence for those
    only: int8 goes nowhere else and no lossy codec is used for a tensor it did not measure."""
    doc = json.loads(sens.read_text())
    kept = next(name for name, entry in doc["layers"].items() if entry.get("int8", {}).get("applies"))
    doc["layers"] = {kept: doc["layers"][kept]}
    doc["tensors"] = {name: {**entry, "codecs": {c: {k: v for k, v in r.items() if k != "drop"}
                                                 for c, r in entry["codecs"].items()}}
                      for name, entry in doc["tensors"].items()}
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(doc))
    _, planned = plan(tmp_path, "5%", "--sensitivity", str(partial))
    assert {layer for layer, p in planned["precision"].items() if p != "fp32"} <= {kept}
    assert {up["codec"] for cut in planned["cuts"] for up in cut["up"]} <= {"raw", "zlib"}
    assert "does not cover are left out" in planned["lossy"]["ground"]


def test_sensitivity_confirms_a_plans_lossy_choices(tmp_path, sens):
    plan_path, doc = plan(tmp_path, "1%", "--sensitivity", str(sens))
    result = edgepart("sensitivity", DIGITS, "--data", CALIB, "--samples", "90", "--confirm", str(plan_path),
                      "--json", "-q")
    assert result.returncode == 0, result.stderr
    confirmed = json.loads(result.stdout)["confirmed"]
    lowered = {layer for layer, precision in doc["precision"].items() if precision != "fp32"}
    assert lowered and lowered <= {c["layer"] for c in confirmed if "layer" in c}
    assert all(c["run"] is not None for c in confirmed)
    together = json.loads(result.stdout)["composed"][-1]  # the plan's choices run together
    assert together["choices"] >= len(lowered) and together["samples"] == 180  # every sample of --data
    assert together["bound"] >= together["together"]
    other = edgepart("sensitivity", str(MODELS / "chain_cnn.onnx"), "--confirm", str(plan_path))
    assert_one_line_error(other, 2, "--confirm", "sha256")
