"""`edgepart plan` as a user meets it."""

from __future__ import annotations

import json

from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS, REPO

EXAMPLE = REPO / "examples" / "phone-edge-cloud.toml"


def test_plan_json_has_the_stable_keys(tmp_path):
    result = edgepart("plan", str(MODELS / "inception_cnn.onnx"), "--deploy", str(EXAMPLE), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["kind"] == "edgepart.plan"
    assert set(doc["assignment"].values()) <= {"device", "edge", "cloud"}
    assert doc["predicted"]["latency_s"] > 0 and doc["predicted"]["energy_j"] > 0
    assert {"all_device", "all_edge", "all_cloud", "best_single_split"} <= set(doc["baselines"])
    assert doc["baselines"]["all_device"]["latency_s"] >= doc["predicted"]["latency_s"]
    assert doc["solver"]["name"] and doc["solver"]["status"] == "optimal" and doc["solver"]["seconds"] >= 0


def test_plan_files_are_byte_identical(tmp_path):
    outputs = []
    for i in range(2):
        path = tmp_path / f"plan{i}.json"
        result = edgepart("plan", str(MODELS / "residual_cnn.onnx"), "--deploy", str(EXAMPLE), "-o", str(path),
                          "--reproducible", "--objective", "throughput")
        assert result.returncode == 0, result.stderr
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    timed = tmp_path / "timed.json"
    edgepart("plan", str(MODELS / "residual_cnn.onnx"), "--deploy", str(EXAMPLE), "-o", str(timed),
             "--objective", "throughput")
    with_time = json.loads(timed.read_text())
    assert with_time["solver"].pop("seconds") > 0
    without = json.loads(outputs[0])
    without["solver"].pop("seconds")
    assert with_time == without


def test_unreachable_latency_budget_exits_1_naming_it(tmp_path):
    deploy = tmp_path / "tight.toml"
    deploy.write_text(EXAMPLE.read_text() + '\n[budgets]\nlatency = "1 us"\n')
    result = edgepart("plan", str(MODELS / "chain_cnn.onnx"), "--deploy", str(deploy))
    assert_one_line_error(result, 1, "latency budget 0.001 ms cannot be met", "best reachable")


def test_explain_and_bad_deploy(tmp_path):
    result = edgepart("plan", str(MODELS / "digits_cnn.onnx"), "--deploy", str(REPO / "examples" / "board-server.toml"),
                      "--explain")
    assert result.returncode == 0 and "best_single_split" in result.stdout and "link device-edge" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace('preset = "wan"', 'preset = "carrier-pigeon"'))
    assert_one_line_error(edgepart("plan", str(MODELS / "digits_cnn.onnx"), "--deploy", str(bad)), 2,
                          "bad.toml: link[1].preset: unknown link preset 'carrier-pigeon'")
