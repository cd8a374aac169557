"""Hostile input (issue #18, first cases): names read from files never become paths outside the
folders the user named. Each case: exit 2, one line naming the file and field, nothing written
outside the case's own folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS, REPO

DIGITS = str(MODELS / "digits_cnn.onnx")
TWO_TIERS = """[[tier]]
name = "{first}"
device = "local"
target = "x86-64"
backend = "onnxruntime"

[[tier]]
name = "edge"
device = "local"
target = "x86-64"
backend = "onnxruntime"

[[link]]
from = "{first}"
to = "edge"
preset = "ethernet"
{link_name}
[pins]
first_layers = 2
"""


def _files_under(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """The digits CNN cut after fc1: a tensor goes up the link, so a build's network has crossings."""
    folder = tmp_path_factory.mktemp("split")
    deploy = TWO_TIERS.format(first="device", link_name="").replace("first_layers = 2", 'nodes = { "fc2" = "edge" }')
    (folder / "deploy.toml").write_text(deploy)
    assert edgepart("plan", DIGITS, "--deploy", str(folder / "deploy.toml"), "-o", str(folder / "plan.json")
                    ).returncode == 0
    result = edgepart("compile", DIGITS, "--plan", str(folder / "plan.json"), "-o", str(folder / "build"), "-q")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A two-tier build of the digits CNN (onnxruntime tiers: quick), its plan and deployment."""
    folder = tmp_path_factory.mktemp("built")
    (folder / "deploy.toml").write_text(TWO_TIERS.format(first="device", link_name=""))
    assert edgepart("plan", DIGITS, "--deploy", str(folder / "deploy.toml"), "-o", str(folder / "plan.json")
                    ).returncode == 0
    result = edgepart("compile", DIGITS, "--plan", str(folder / "plan.json"), "-o", str(folder / "build"), "-q")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.parametrize("first, link_name, field", [
    ("../X", "", "tier[0].name"),
    ("/tmp/X", "", "tier[0].name"),
    ("a b", "", "tier[0].name"),
    ("device", 'name = "../up"', "link[0].name"),
    ("device", 'name = "a/b"', "link[0].name"),
])
def test_a_deployment_name_that_is_not_a_file_name_is_refused(tmp_path, first, link_name, field):
    deploy = tmp_path / "case" / "deploy.toml"
    deploy.parent.mkdir()
    deploy.write_text(TWO_TIERS.format(first=first, link_name=link_name))
    before = _files_under(tmp_path)
    result = edgepart("plan", DIGITS, "--deploy", str(deploy), "-o", str(tmp_path / "case" / "plan.json"))
    assert_one_line_error(result, 2, str(deploy), field, "is not a usable name")
    assert _files_under(tmp_path) == before


@pytest.mark.parametrize("name", ["../X", "/tmp/edgepart-escape-X", "..", ""])
def test_a_plan_whose_tier_name_is_a_path_is_refused_by_compile(built, tmp_path, name):
    plan = json.loads((built / "plan.json").read_text())
    plan["deployment"]["tiers"][0]["name"] = name
    plan["assignment"] = {node: (name if tier == "device" else tier) for node, tier in plan["assignment"].items()}
    case = tmp_path / "case"
    case.mkdir()
    (case / "plan.json").write_text(json.dumps(plan))
    before = _files_under(tmp_path)
    result = edgepart("compile", DIGITS, "--plan", str(case / "plan.json"), "-o", str(case / "build"))
    assert_one_line_error(result, 2, str(case / "plan.json"), "deployment.tiers[0].name", "is not a usable name")
    assert _files_under(tmp_path) == before and not os.path.exists("/tmp/edgepart-escape-X")


@pytest.mark.parametrize("command", ["verify", "run"])
def test_a_manifest_whose_tier_name_is_a_path_is_refused(built, tmp_path, command):
    build = tmp_path / "case" / "build"
    shutil.copytree(built / "build", build)
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["tiers"][0]["name"] = "../X"
    (build / "manifest.json").write_text(json.dumps(manifest))
    before = _files_under(tmp_path)
    result = edgepart(command, str(build), *(["--requests", "2"] if command == "run" else []))
    assert_one_line_error(result, 2, str(build / "manifest.json"), "tiers[0].name", "is not a usable name")
    assert _files_under(tmp_path) == before


def test_sample_inputs_linked_from_outside_the_build_are_refused(built, tmp_path):
    build = tmp_path / "case" / "build"
    shutil.copytree(built / "build", build)
    outside = tmp_path / "elsewhere.npz"
    np.savez(outside, input=np.zeros((1, 1, 28, 28), np.float32))
    (build / "sample_inputs.npz").symlink_to(outside)
    result = edgepart("verify", str(build))
    assert_one_line_error(result, 2, "sample_inputs.npz", "outside")


def test_sample_inputs_that_are_not_numbers_are_refused(built, tmp_path):
    build = tmp_path / "case" / "build"
    shutil.copytree(built / "build", build)
    np.savez(build / "sample_inputs.npz", input=np.array(["a", "b"]))
    result = edgepart("verify", str(build))
    assert_one_line_error(result, 2, "sample_inputs.npz", "array 'input'", "not numbers")


LOCAL = '[[tier]]\nname = "host"\ndevice = "local"\ntarget = "x86-64"\nbackend = "onnxruntime"\n'


def _profile_doc(tmp_path) -> dict:
    """A measured-looking profile of the digits CNN (predicted for device local: quick)."""
    out = tmp_path / "made.json"
    assert edgepart("profile", DIGITS, "--predict", "--device", "local", "-o", str(out)).returncode == 0
    doc = json.loads(out.read_text())
    out.unlink()
    return doc


def _first_layer(doc: dict) -> dict:
    return next(iter(doc["precisions"]["fp32"]["layers"].values()))


PROFILE_EDITS = {
    "no precisions": (lambda d: d.pop("precisions"), "precisions"),
    "string time": (lambda d: _first_layer(d).__setitem__("calibrated_s", "fast"), "calibrated_s"),
    "negative time": (lambda d: _first_layer(d).__setitem__("calibrated_s", -1.0), "calibrated_s"),
    "NaN time": (lambda d: _first_layer(d).__setitem__("calibrated_s", float("nan")), "calibrated_s"),
    "no device": (lambda d: d.pop("device"), "device"),
    "idle factor below one": (lambda d: d["provenance"].__setitem__("idle", {"factor": 0.5, "gap_s": 0.005}),
                              "provenance.idle"),
    "idle factor huge": (lambda d: d["provenance"].__setitem__("idle", {"factor": 1e300, "gap_s": 0.005}),
                         "provenance.idle.factor"),
    "a layer taking a year": (lambda d: _first_layer(d).__setitem__("calibrated_s", 3.2e7), "calibrated_s"),
    "backend a list": (lambda d: d["provenance"].__setitem__("backend", ["tvm"]), "provenance.backend"),
    "model hash with a line break": (lambda d: d["model"].__setitem__("sha256", "a\nb"), "model.sha256"),
    "unknown backend": (lambda d: d["provenance"].__setitem__("backend", "pytorch"), "provenance.backend"),
    "unknown precision": (lambda d: d["precisions"].__setitem__("fp64", d["precisions"]["fp32"]), "fp64"),
}


@pytest.mark.parametrize("case", sorted(PROFILE_EDITS))
def test_a_malformed_profile_is_refused_naming_the_field(tmp_path, case):
    edit, field = PROFILE_EDITS[case]
    doc = _profile_doc(tmp_path)
    edit(doc)
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "local.json").write_text(json.dumps(doc, allow_nan=True))
    (tmp_path / "deploy.toml").write_text(LOCAL)
    result = edgepart("plan", DIGITS, "--deploy", str(tmp_path / "deploy.toml"), "--profiles", str(folder))
    assert_one_line_error(result, 2, str(folder / "local.json"), field)


def test_calibrate_with_a_profile_without_its_device_is_refused(tmp_path):
    doc = _profile_doc(tmp_path)
    doc.pop("device")
    (tmp_path / "p.json").write_text(json.dumps(doc))
    result = edgepart("profile", DIGITS, "--predict", "--device", "local", "--calibrate-with", str(tmp_path / "p.json"))
    assert_one_line_error(result, 2, str(tmp_path / "p.json"), "device")


@pytest.mark.parametrize("line, field", [
    ('bandwidth = "1e999 Mbit/s"', "link[0].bandwidth"),
    ('bandwidth = "0 Mbit/s"', "link[0].bandwidth"),
])
def test_a_link_bandwidth_that_is_not_a_speed_is_refused(tmp_path, line, field):
    text = TWO_TIERS.format(first="device", link_name=line + '\nrtt = "1 ms"').replace('preset = "ethernet"\n', "")
    (tmp_path / "deploy.toml").write_text(text)
    assert_one_line_error(edgepart("plan", DIGITS, "--deploy", str(tmp_path / "deploy.toml")), 2, field)


@pytest.mark.parametrize("value", ['"150%"', '"-1%"', "1.5"])
def test_an_accuracy_budget_outside_zero_to_hundred_percent_is_refused(tmp_path, value):
    (tmp_path / "deploy.toml").write_text(LOCAL + f"[budgets]\naccuracy_drop = {value}\n")
    assert_one_line_error(edgepart("plan", DIGITS, "--deploy", str(tmp_path / "deploy.toml")), 2,
                          "[budgets].accuracy_drop", "0% to 100%")


@pytest.mark.parametrize("args, needle", [
    (["profile", DIGITS, "--predict", "--device", "rpi4", "--backend", "tvm"], "--backend tvm with --predict"),
    (["profile", DIGITS, "--calibrate-with", "x.json"], "--calibrate-with"),
    (["profile", DIGITS, "--repeat", "1000000000"], "--repeat"),
    (["profile", DIGITS, "--threads", "100000"], "--threads"),
    (["plan", DIGITS, "--deploy", "deploy.toml", "--time-limit", "-1"], "--time-limit"),
    (["plan", DIGITS, "--deploy", "deploy.toml", "--time-limit", "nan"], "--time-limit"),
    (["compile", DIGITS, "--plan", "plan.json", "--tune", "-5"], "--tune"),
    (["run", "build", "--requests", "0"], "--requests"),
    (["run", "build", "--requests", "1000000000"], "--requests"),
    (["run", "build", "--timeout", "-1"], "--timeout"),
    # an option another one makes meaningless is refused, not ignored
    (["profile", DIGITS, "--predict", "--device", "rpi4", "--repeat", "5"], "--repeat means something only"),
    (["profile", DIGITS, "--predict", "--device", "rpi4", "--optimization", "basic"], "--optimization"),
    (["profile", DIGITS, "--data", "x.npz"], "--data means something only with --precision int8"),
    (["profile", DIGITS, "--target", "rpi4"], "--target means something only with --backend tvm"),
    (["plan", DIGITS, "--deploy", "deploy.toml", "--energy-weight", "0.5"], "--energy-weight"),
    (["plan", DIGITS, "--deploy", "deploy.toml", "--solver", "chain", "--time-limit", "5"], "--time-limit"),
    (["compile", DIGITS, "--plan", "plan.json", "--tuning-db", "db"], "--tuning-db means something only with --tune"),
    (["verify", "build", "--samples", "3"], "--samples means something only with --validate-accuracy"),
    (["profile", DIGITS, "--rpc", "127.0.0.1:99999", "--target", "rpi4"], "port from 1 to 65535"),
    (["plan", DIGITS, "--deploy", "deploy.toml", "--objective", "weighted", "--energy-weight", "nan"],
     "--energy-weight"),
    (["plan", DIGITS, "--deploy", "deploy.toml", "--objective", "weighted", "--energy-weight", "1e308"],
     "--energy-weight"),
    (["sweep", DIGITS, "--deploy", "deploy.toml", "--bandwidth", "1 Mbit/s..100 Mbit/s", "--plot", "x.xyz"], "--plot"),
    (["sweep", DIGITS, "--deploy", "deploy.toml", "--energy-weight", "2"], "--energy-weight means something only"),
    (["profile", DIGITS, "--predict", "--device", "rpi4", "--rpc", "127.0.0.1:9090"], "--rpc"),
    (["compile", DIGITS, "--plan", "plan.json", "--byoc-report", "--tune", "5"], "--tune means something only"),
    (["run", "build", "--rate", "nan"], "--rate"),
    (["run", "build", "--rate", "1e-9"], "--rate"),
    (["run", "build", "--timeout", "1e-9"], "--timeout"),
    (["sensitivity", DIGITS, "--samples", "1000000000000"], "--samples"),
    (["sensitivity", DIGITS, "--metric", "accuracy"], "--metric accuracy needs --data"),
    (["sensitivity", DIGITS, "--precision", ","], "--precision"),
    (["inspect", DIGITS, "--input-shape", "image=1x1x9x9"], "only dynamic dimensions"),
    (["inspect", DIGITS, "--input-shape", "image=1x1x8x8", "--input-shape", "image=2x1x8x8"], "another shape"),
])
def test_an_option_out_of_range_or_meaningless_is_refused(tmp_path, args, needle):
    (tmp_path / "deploy.toml").write_text(LOCAL)
    before = _files_under(tmp_path)
    result = edgepart(*args, cwd=tmp_path)
    assert_one_line_error(result, 2, needle)
    assert _files_under(tmp_path) == before


@pytest.mark.parametrize("arrays, needle", [
    ({"image": np.array(["a", "b"])}, "array 'image' is <U1, not numbers"),
    ({"image": np.zeros((2, 1, 8, 8), np.float32), "labels": np.array(["cat", "dog"])}, "array 'labels'"),
    ({"image": np.zeros((2, 1, 8, 8), np.float32), "labels": np.array([0.5, 1.0])}, "labels are class indices"),
])
def test_data_that_is_not_numbers_is_refused(tmp_path, arrays, needle):
    np.savez(tmp_path / "data.npz", **arrays)
    result = edgepart("sensitivity", DIGITS, "--data", str(tmp_path / "data.npz"), "-o", str(tmp_path / "s.json"))
    assert_one_line_error(result, 2, str(tmp_path / "data.npz"), needle)
    assert not (tmp_path / "s.json").exists()


def test_a_sensitivity_file_without_layers_is_refused(tmp_path):
    doc = {"kind": "edgepart.sensitivity", "schema_version": 1, "model": {"path": DIGITS, "sha256": "0" * 64},
           "metric": {"name": "cosine"}, "data": {}, "host": {}, "tensors": {}}
    (tmp_path / "s.json").write_text(json.dumps(doc))
    (tmp_path / "deploy.toml").write_text(LOCAL)
    result = edgepart("plan", DIGITS, "--deploy", str(tmp_path / "deploy.toml"), "--sensitivity",
                      str(tmp_path / "s.json"))
    assert_one_line_error(result, 2, str(tmp_path / "s.json"), "layers")


def test_verify_against_another_model_names_both_hashes(built):
    result = edgepart("verify", str(built / "build"), "--model", str(MODELS / "chain_cnn.onnx"))
    assert_one_line_error(result, 2, "chain_cnn.onnx", "differs from the model this build was made from")


def test_an_opset_from_the_future_is_refused(tmp_path):
    import onnx  # noqa: PLC0415

    model = onnx.load(DIGITS)
    model.opset_import[0].version = 999
    onnx.save(model, tmp_path / "future.onnx")
    assert_one_line_error(edgepart("inspect", str(tmp_path / "future.onnx")), 2, "opset 999")


@pytest.mark.parametrize("tiers", [None, 5, [3]])
def test_a_manifest_without_a_list_of_tiers_is_refused(built, tmp_path, tiers):
    build = tmp_path / "build"
    shutil.copytree(built / "build", build)
    manifest = json.loads((build / "manifest.json").read_text())
    if tiers is None:
        manifest.pop("tiers")
    else:
        manifest["tiers"] = tiers
    (build / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(edgepart("verify", str(build)), 2, str(build / "manifest.json"), "tiers")


def test_compile_removes_what_a_killed_compile_left_and_records_paths_inside_the_build(built, tmp_path):
    """A staging folder of a compile that was SIGKILLed (its process gone) is removed by the next
    compile of the same build; the manifest names no staging path."""
    abandoned = tmp_path / ".build.999999999.x1y2z3"
    (abandoned / "device").mkdir(parents=True)
    result = edgepart("compile", DIGITS, "--plan", str(built / "plan.json"), "-o", str(tmp_path / "build"), "-q")
    assert result.returncode == 0, result.stderr
    assert not abandoned.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["build"]
    manifest = (tmp_path / "build" / "manifest.json").read_text()
    assert ".build." not in manifest


@pytest.mark.parametrize("command", ["verify", "run"])
def test_a_changed_artifact_is_bad_input_for_verify_and_run_alike(built, tmp_path, command):
    build = tmp_path / "build"
    shutil.copytree(built / "build", build)
    artifact = build / json.loads((build / "manifest.json").read_text())["tiers"][0]["artifact"]
    artifact.write_bytes(artifact.read_bytes() + b"x")
    result = edgepart(command, str(build), *(["--requests", "2"] if command == "run" else []))
    assert_one_line_error(result, 2, str(artifact), "the artifact was changed after compile")


# deploy.toml: each case an edit of a valid two-tier file, refused by plan naming the field.
DEPLOY_CASES = {
    "unknown key": (lambda t: t.replace('backend = "onnxruntime"\n', 'backend = "onnxruntime"\ncolour = "red"\n', 1),
                    "colour"),
    "duplicate tier": (lambda t: t.replace('name = "edge"', 'name = "device"'), "unique"),
    "unknown device": (lambda t: t.replace('device = "local"', 'device = "toaster"', 1), "toaster"),
    "unknown target": (lambda t: t.replace('target = "x86-64"', 'target = "riscv-toaster"', 1), "riscv-toaster"),
    "link from nowhere": (lambda t: t.replace('from = "device"', 'from = "moon"'), "link[0].from"),
    "bandwidth words": (lambda t: t.replace('preset = "ethernet"', 'bandwidth = "fast"\nrtt = "1 ms"'),
                        "link[0].bandwidth"),
    "rtt without unit": (lambda t: t.replace('preset = "ethernet"', 'bandwidth = "1 Gbit/s"\nrtt = 1'), "link[0].rtt"),
    "unknown preset": (lambda t: t.replace('preset = "ethernet"', 'preset = "carrier-pigeon"'), "carrier-pigeon"),
    "zero threads": (lambda t: t.replace('backend = "onnxruntime"\n', 'backend = "onnxruntime"\nthreads = 0\n', 1),
                     "threads"),
    "threads as text": (lambda t: t.replace('backend = "onnxruntime"\n', 'backend = "onnxruntime"\nthreads = "2"\n',
                                            1), "threads"),
    "unknown precision": (lambda t: t.replace('backend = "onnxruntime"\n',
                                              'backend = "onnxruntime"\nprecisions = ["fp64"]\n', 1), "fp64"),
    "negative memory": (lambda t: t.replace('backend = "onnxruntime"\n', 'backend = "onnxruntime"\nmemory = "-1 MiB"\n',
                                            1), "memory"),
    "memory without unit": (lambda t: t.replace('backend = "onnxruntime"\n',
                                                'backend = "onnxruntime"\nmemory = 512\n', 1), "memory"),
    "latency budget words": (lambda t: t + '[budgets]\nlatency = "soon"\n', "latency"),
    "energy budget in ms": (lambda t: t + '[budgets]\ndevice_energy = "5 ms"\n', "device_energy"),
    "pin to unknown tier": (lambda t: t.replace("first_layers = 2", 'nodes = { "conv1" = "moon" }'), "moon"),
    "first_layers text": (lambda t: t.replace("first_layers = 2", 'first_layers = "two"'), "first_layers"),
    "output tier unknown": (lambda t: '[deploy]\noutput_tier = "moon"\n' + t, "output_tier"),
    "auto backend": (lambda t: t.replace('backend = "onnxruntime"', 'backend = "auto"', 1), "auto"),
    "not TOML": (lambda t: t + "[[tier\n", "TOML"),
    "device a number": (lambda t: t.replace('device = "local"', "device = 7", 1), "tier[0].device"),
    "target a list": (lambda t: t.replace('target = "x86-64"', 'target = ["x86-64"]', 1), "tier[0].target"),
    "precisions a number": (lambda t: t.replace('backend = "onnxruntime"\n',
                                                'backend = "onnxruntime"\nprecisions = 8\n', 1), "tier[0].precisions"),
    "no precisions": (lambda t: t.replace('backend = "onnxruntime"\n', 'backend = "onnxruntime"\nprecisions = []\n',
                                          1), "tier[0].precisions"),
    "no codecs": (lambda t: "[deploy]\ncodecs = []\n" + t, "deploy.codecs"),
    "codecs a number": (lambda t: "[deploy]\ncodecs = 3\n" + t, "deploy.codecs"),
    "preset a table": (lambda t: t.replace('preset = "ethernet"', 'preset = { a = 1 }'), "link[0].preset"),
    "radio a list": (lambda t: t.replace('preset = "ethernet"', 'preset = "ethernet"\nradio = ["wifi"]'),
                     "link[0].radio"),
    "pinned nodes a list": (lambda t: t.replace("first_layers = 2", 'nodes = ["conv1"]'), "pins].nodes"),
    "threads true": (lambda t: t.replace('backend = "onnxruntime"\n', 'backend = "onnxruntime"\nthreads = true\n', 1),
                     "threads"),
    "nested too deeply": (lambda t: t + "x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    "input stays as text": (lambda t: t.replace("first_layers = 2", 'input_stays_on_device = "no"'),
                            "input_stays_on_device"),
    "two links for one pair": (lambda t: t + '[[link]]\nfrom = "device"\nto = "edge"\npreset = "ethernet"\n',
                               "a second link"),
}


@pytest.mark.parametrize("case", sorted(DEPLOY_CASES))
def test_a_malformed_deployment_is_refused_naming_the_field(tmp_path, case):
    edit, needle = DEPLOY_CASES[case]
    deploy = tmp_path / "deploy.toml"
    deploy.write_text(edit(TWO_TIERS.format(first="device", link_name="")))
    result = edgepart("plan", DIGITS, "--deploy", str(deploy), "-o", str(tmp_path / "plan.json"))
    assert_one_line_error(result, 2, str(deploy), needle)
    assert not (tmp_path / "plan.json").exists()


# plan.json: each case an edit of a valid plan, refused by compile naming the file; nothing built.
PLAN_CASES = {
    "not JSON": (lambda p: "{", "JSON"),
    "another kind": (lambda p: {**p, "kind": "edgepart.manifest"}, "kind"),
    "a newer schema": (lambda p: {**p, "schema_version": 99}, "schema"),
    "no assignment": (lambda p: {k: v for k, v in p.items() if k != "assignment"}, "assignment"),
    "no cuts": (lambda p: {k: v for k, v in p.items() if k != "cuts"}, "cuts"),
    "node on unknown tier": (lambda p: {**p, "assignment": {**p["assignment"], "conv1": "moon"}}, "moon"),
    "node unplaced": (lambda p: {**p, "assignment": {k: v for k, v in p["assignment"].items() if k != "conv1"}},
                      "conv1"),
    "unknown node": (lambda p: {**p, "assignment": {**p["assignment"], "ghost": "device"}}, "ghost"),
    "precision not allowed": (lambda p: {**p, "precision": {**p.get("precision", {}), "conv1": "int8"}}, "int8"),
    "precision of no node": (lambda p: {**p, "precision": {**p.get("precision", {}), "ghost": "fp16"}}, "ghost"),
    "tiers not a list": (lambda p: {**p, "deployment": {**p["deployment"], "tiers": "device"}}, "deployment.tiers"),
    "one cut too many": (lambda p: {**p, "cuts": p["cuts"] * 2}, "cuts"),
    "model hash missing": (lambda p: {**p, "model": {"path": DIGITS}}, "model.sha256"),
    "another model": (lambda p: {**p, "model": {"path": DIGITS, "sha256": "0" * 64}}, "made for model"),
    "assignment a list": (lambda p: {**p, "assignment": list(p["assignment"])}, "assignment"),
    "unknown precision": (lambda p: {**p, "precision": {**p.get("precision", {}), "conv1": "fp64"}}, "fp64"),
    "cut without link": (lambda p: {**p, "cuts": [{k: v for k, v in p["cuts"][0].items() if k != "link"}]},
                         "cuts[0].link"),
    "threads NaN": (lambda p: {**p, "deployment": {**p["deployment"], "tiers": [
        {**p["deployment"]["tiers"][0], "threads": float("nan")}, *p["deployment"]["tiers"][1:]]}}, "threads"),
    "link bandwidth infinite": (lambda p: {**p, "deployment": {**p["deployment"], "links": [
        {**p["deployment"]["links"][0], "uplink_bps": 1e999}]}}, "uplink_bps"),
    "budgets a list": (lambda p: {**p, "budgets": []}, "budgets"),
    "predicted per tier text": (lambda p: {**p, "predicted": {**p["predicted"], "per_tier": "fast"}}, "per_tier"),
    "solver without name": (lambda p: {**p, "solver": {}}, "solver.name"),
    "model hash with a line break": (lambda p: {**p, "model": {"path": DIGITS, "sha256": "a\nb"}}, "model.sha256"),
    "nested too deeply": (lambda p: "[" * 100000 + "]" * 100000, "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(PLAN_CASES))
def test_a_malformed_plan_is_refused_by_compile(built, tmp_path, case):
    edit, needle = PLAN_CASES[case]
    changed = edit(json.loads((built / "plan.json").read_text()))
    plan = tmp_path / "plan.json"
    plan.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    result = edgepart("compile", DIGITS, "--plan", str(plan), "-o", str(tmp_path / "build"))
    assert_one_line_error(result, 2, str(plan), needle)
    assert not (tmp_path / "build").exists()


# manifest.json: each case an edit of a valid build's manifest, refused by verify naming the field.
MANIFEST_CASES = {
    "not JSON": (lambda m: "[", "JSON"),
    "no model": (lambda m: {k: v for k, v in m.items() if k != "model"}, "model"),
    "outputs not names": (lambda m: {**m, "outputs": [1, 2]}, "outputs"),
    "tier without backend": (lambda m: {**m, "tiers": [{k: v for k, v in m["tiers"][0].items() if k != "backend"}]},
                             "tiers[0].backend"),
    "inputs not a list": (lambda m: {**m, "tiers": [{**m["tiers"][0], "inputs": "image"}]}, "tiers[0].inputs"),
    "negative shape": (lambda m: {**m, "tiers": [{**m["tiers"][0], "inputs": [{"name": "image", "shape": [-1],
                                                                                 "dtype": "float32"}]}]},
                       "tiers[0].inputs[0]"),
    "negative price": (lambda m: {**m, "tiers": [{**m["tiers"][0], "priced_s": -1.0}]}, "tiers[0].priced_s"),
    "artifact outside": (lambda m: {**m, "tiers": [{**m["tiers"][0], "artifact": "../../etc/passwd"}]},
                         "escapes the folder"),
    "no output tier": (lambda m: {k: v for k, v in m.items() if k != "output_tier"}, "output_tier"),
    "no outputs": (lambda m: {**m, "outputs": []}, "outputs"),
    "an output no tier makes": (lambda m: {**m, "outputs": ["ghost"]}, "made by none of the tiers"),
    "input renamed": (lambda m: {**m, "tiers": [{**m["tiers"][0], "inputs": [{**m["tiers"][0]["inputs"][0],
                                                                            "name": "ghost"}]}]}, "input 'ghost'"),
    "index NaN": (lambda m: {**m, "tiers": [{**m["tiers"][0], "index": float("nan")}]}, "tiers[0].index"),
    "threads a list": (lambda m: {**m, "tiers": [{**m["tiers"][0], "threads": [1]}]}, "tiers[0].threads"),
    "precisions text": (lambda m: {**m, "tiers": [{**m["tiers"][0], "precisions": "fp32"}]}, "tiers[0].precisions"),
    "artifact name too long": (lambda m: {**m, "tiers": [{**m["tiers"][0], "artifact": "x" * 300}]}, "artifact"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_a_malformed_manifest_is_refused_by_verify(built, tmp_path, case):
    edit, needle = MANIFEST_CASES[case]
    build = tmp_path / "build"
    shutil.copytree(built / "build", build)
    changed = edit(json.loads((build / "manifest.json").read_text()))
    (build / "manifest.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))
    before = _files_under(tmp_path)
    assert_one_line_error(edgepart("verify", str(build)), 2, needle)
    assert _files_under(tmp_path) == before


@pytest.mark.parametrize("content, needle", [
    (b"not a zip", "not an .npz file"),
    (None, "no array named 'image'"),
    ("shape", "has shape"),
])
def test_bad_inputs_for_verify_are_refused(built, tmp_path, content, needle):
    path = tmp_path / "inputs.npz"
    if content is None:
        np.savez(path, other=np.zeros((1, 1, 8, 8), np.float32))
    elif content == "shape":
        np.savez(path, image=np.zeros((3, 5), np.float32))
    else:
        path.write_bytes(content)
    assert_one_line_error(edgepart("verify", str(built / "build"), "--inputs", str(path)), 2, str(path), needle)


def _model_case(tmp_path, kind: str):
    """A model file that is not a usable ONNX model, of one kind."""
    import onnx  # noqa: PLC0415

    path = tmp_path / "model.onnx"
    good = onnx.load(DIGITS)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":
        path.write_bytes((MODELS / "digits_cnn.onnx").read_bytes()[:2000])
    elif kind == "text":
        path.write_text("graph { node { op_type: 'Relu' } }")
    elif kind == "a folder":
        path.mkdir()
    elif kind == "dangling input":
        good.graph.node[1].input[0] = "nowhere"
        path.write_bytes(good.SerializeToString())
    elif kind == "no nodes":
        del good.graph.node[:]
        path.write_bytes(good.SerializeToString())
    elif kind == "missing external data":
        tensor = good.graph.initializer[0]
        tensor.data_location = onnx.TensorProto.EXTERNAL
        del tensor.external_data[:]
        tensor.external_data.add(key="location", value="weights.bin")
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        path.write_bytes(good.SerializeToString())
    elif kind == "missing":
        pass
    return path


MODEL_KINDS = ["empty", "random bytes", "truncated", "text", "a folder", "dangling input", "no nodes",
               "missing external data", "missing"]


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("command", ["inspect", "profile", "plan"])
def test_a_model_that_is_not_one_is_refused_by_every_command(tmp_path, kind, command):
    path = _model_case(tmp_path, kind)
    (tmp_path / "deploy.toml").write_text(LOCAL)
    args = {"inspect": [], "profile": ["--predict", "--device", "rpi4"],
            "plan": ["--deploy", str(tmp_path / "deploy.toml")]}[command]
    before = _files_under(tmp_path)
    result = edgepart(command, str(path), *args)
    assert_one_line_error(result, 2, str(tmp_path))  # the model, or the weights file it names
    assert _files_under(tmp_path) == before


# manifest.json's network (what run lays tiers and links out by): refused by run before any tier starts.
NETWORK_CASES = {
    "no links": (lambda n: {k: v for k, v in n.items() if k != "links"}, "network.links"),
    "a tier missing": (lambda n: {**n, "tiers": n["tiers"][:1]}, "network"),
    "unknown codec": (lambda n: {**n, "links": [{**n["links"][0], "up": [{**n["links"][0]["up"][0],
                                                                        "codec": "a/b"}]}]}, "unknown codec"),
    "no tensor up": (lambda n: {**n, "links": [{**n["links"][0], "up": []}]}, "does not bring up"),
    "tensor renamed": (lambda n: {**n, "links": [{**n["links"][0], "up": [{**n["links"][0]["up"][0],
                                                                         "tensor": "ghost"}]}]}, "does not bring up"),
    "bandwidth zero": (lambda n: {**n, "links": [{**n["links"][0], "downlink_bps": 0}]}, "downlink_bps"),
    "latency text": (lambda n: {**n, "predicted": {**n["predicted"], "latency_s": "soon"}}, "latency_s"),
}


@pytest.mark.parametrize("case", sorted(NETWORK_CASES))
def test_a_malformed_network_is_refused_by_run(split, tmp_path, case):
    edit, needle = NETWORK_CASES[case]
    build = tmp_path / "build"
    shutil.copytree(split / "build", build)
    manifest = json.loads((build / "manifest.json").read_text())
    (build / "manifest.json").write_text(json.dumps({**manifest, "network": edit(manifest["network"])}))
    before = _files_under(tmp_path)
    assert_one_line_error(edgepart("run", str(build), "--requests", "1"), 2, needle)
    assert _files_under(tmp_path) == before


@pytest.mark.parametrize("kind", ["fifo", "folder", "symlink loop"])
def test_a_deployment_that_is_not_a_regular_file_is_refused_not_waited_on(tmp_path, kind):
    deploy = tmp_path / "deploy.toml"
    if kind == "fifo":
        os.mkfifo(deploy)
    elif kind == "folder":
        deploy.mkdir()
    else:
        deploy.symlink_to(deploy)
    result = edgepart("plan", DIGITS, "--deploy", str(deploy), "-o", str(tmp_path / "plan.json"), timeout=60)
    assert_one_line_error(result, 2, str(deploy))


DEVICE_EDITS = {
    "zero bandwidth": ("memory_bandwidth", 0, "memory_bandwidth"),
    "zero efficiency": ("efficiency", {"conv": 0}, "efficiency.conv"),
    "overhead NaN": ("layer_overhead_s", float("nan"), "layer_overhead_s"),
    "peak a boolean": ("peak_ops", {"fp32": True}, "peak_ops.fp32"),
    "name a list": ("name", ["a"], "name"),
    "power huge": ("power", {"idle_w": 1.0, "active_w": 1e308}, "power.active_w"),
    "cores huge": ("cores", 10**30, "cores"),
}


@pytest.mark.parametrize("case", sorted(DEVICE_EDITS))
def test_a_malformed_device_profile_is_refused_naming_the_field(tmp_path, case):
    key, value, needle = DEVICE_EDITS[case]
    shipped = json.loads((MODELS.parent / "edgepart" / "profiles" / "devices" / "rpi4.json").read_text())
    device = tmp_path / "board.json"
    device.write_text(json.dumps({**shipped, key: value}))
    result = edgepart("profile", DIGITS, "--predict", "--device", str(device))
    assert_one_line_error(result, 2, str(device), needle)


CUT_CASES = {
    "unknown codec": ({"codec": "rot13"}, "rot13"),
    "bytes not a number": ({"bytes": "many"}, "cuts[0].up[0].bytes"),
    "tensor a list": ({"tensor": ["x"]}, "cuts[0].up[0].tensor"),
    "tensor renamed": ({"tensor": "ghost"}, "cuts[0].up"),
}


@pytest.mark.parametrize("case", sorted(CUT_CASES))
def test_a_plan_whose_cut_is_malformed_is_refused_by_compile(split, tmp_path, case):
    change, needle = CUT_CASES[case]
    plan = json.loads((split / "plan.json").read_text())
    cut = plan["cuts"][0]
    plan["cuts"] = [{**cut, "up": [{**cut["up"][0], **change}, *cut["up"][1:]]}]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    result = edgepart("compile", DIGITS, "--plan", str(tmp_path / "plan.json"), "-o", str(tmp_path / "build"))
    assert_one_line_error(result, 2, str(tmp_path / "plan.json"), needle)
    assert not (tmp_path / "build").exists()


def _rewritten(build, tier: int, content: bytes) -> None:
    """The tier's artifact replaced, and its hash in the manifest with it: consistent, but broken."""
    import hashlib  # noqa: PLC0415

    manifest = json.loads((build / "manifest.json").read_text())
    entry = manifest["tiers"][tier]
    (build / entry["artifact"]).write_bytes(content)
    entry["artifact_sha256"] = hashlib.sha256(content).hexdigest()
    (build / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("command", ["verify", "run"])
def test_an_artifact_that_is_not_a_model_is_bad_input_even_with_its_hash(built, tmp_path, command):
    build = tmp_path / "build"
    shutil.copytree(built / "build", build)
    _rewritten(build, 0, b"not a model at all")
    args = ["--requests", "1"] if command == "run" else []
    assert_one_line_error(edgepart(command, str(build), *args), 2, "not an ONNX model")


@pytest.mark.parametrize("content, needle", [
    (b"PK\x03\x04 truncated", "not an .npz"),
    ("nan", "NaN values"),
    ("rank", "has shape"),
])
@pytest.mark.parametrize("command", ["verify", "run"])
def test_a_broken_sample_in_the_build_is_bad_input(built, tmp_path, command, content, needle):
    build = tmp_path / "build"
    shutil.copytree(built / "build", build)
    sample = build / "sample_inputs.npz"
    if content == "nan":
        np.savez(sample, image=np.full((1, 1, 8, 8), np.nan, np.float32))
    elif content == "rank":
        np.savez(sample, image=np.zeros((8, 8), np.float32))
    else:
        sample.write_bytes(content)
    args = ["--requests", "1"] if command == "run" else []
    assert_one_line_error(edgepart(command, str(build), *args), 2, "sample_inputs.npz", needle)


def test_a_bad_source_date_epoch_is_named(tmp_path):
    result = subprocess_env(["profile", DIGITS, "--predict", "--device", "rpi4", "-o", str(tmp_path / "p.json")],
                            SOURCE_DATE_EPOCH="yesterday")
    assert_one_line_error(result, 2, "SOURCE_DATE_EPOCH")
    assert not (tmp_path / "p.json").exists()


def subprocess_env(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """edgepart with these environment variables set."""
    return subprocess.run([sys.executable, "-m", "edgepart", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **env}, timeout=120)


def test_two_profiles_of_one_device_are_refused(tmp_path):
    doc = _profile_doc(tmp_path)
    folder = tmp_path / "profiles"
    folder.mkdir()
    for name in ("a.json", "b.json"):
        (folder / name).write_text(json.dumps(doc))
    (tmp_path / "deploy.toml").write_text(LOCAL)
    result = edgepart("plan", DIGITS, "--deploy", str(tmp_path / "deploy.toml"), "--profiles", str(folder))
    assert_one_line_error(result, 2, "a second profile of device")


@pytest.mark.parametrize("command", ["plan", "profile"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, command):
    (tmp_path / "deploy.toml").write_text(LOCAL)
    model = tmp_path / "m.onnx"
    shutil.copy(DIGITS, model)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    args = (["plan", str(model), "--deploy", "deploy.toml", "-o", "deploy.toml"] if command == "plan"
            else ["profile", str(model), "--predict", "--device", "rpi4", "-o", str(model)])
    assert_one_line_error(edgepart(*args, cwd=tmp_path), 2, "is an input of this command")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
