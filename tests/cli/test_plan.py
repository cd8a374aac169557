"""`edgepart plan` as a user meets it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edgepart.errors import CheckFailedError
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
    feasible = [base for base in doc["baselines"].values() if base["feasible"]]
    assert feasible and all(base["latency_s"] >= doc["predicted"]["latency_s"] for base in feasible)
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


def test_an_unreachable_budget_with_json_prints_the_reason_as_json(tmp_path):
    deploy = tmp_path / "tight.toml"
    deploy.write_text(EXAMPLE.read_text() + '\n[budgets]\nlatency = "1 us"\n')
    result = edgepart("plan", str(MODELS / "residual_cnn.onnx"), "--deploy", str(deploy), "--json")
    assert_one_line_error(result, 1, "latency budget 0.001 ms cannot be met")
    doc = json.loads(result.stdout)
    assert doc["kind"] == "edgepart.infeasible" and doc["schema_version"] == 1 and doc["status"] == "infeasible"
    assert doc["budget"] == "latency_s" and doc["limit"] == 1e-6 and doc["best_reachable"] > 1e-4
    assert doc["budgets"] == {"latency_s": {"limit": 1e-6, "best_reachable": doc["best_reachable"], "met": False}}
    assert doc["model"]["path"].endswith("residual_cnn.onnx") and doc["deployment"]["sha256"]


def test_a_plan_that_misses_a_budget_still_prints_its_json(monkeypatch):
    """The solver met the budget within its tolerance but the plan's own check did not: exit 1 after the JSON."""
    from edgepart.cli import cli
    from edgepart.plan import planner

    real = planner.plan

    def missing_a_budget(*args, **kwargs):
        doc = real(*args, **kwargs)
        doc["budgets"] = {"latency_s": {"limit": 1e-3, "predicted": 2e-3, "met": False}}
        return doc

    monkeypatch.setattr(planner, "plan", missing_a_budget)
    result = CliRunner().invoke(cli, ["plan", str(MODELS / "digits_cnn.onnx"), "--deploy", str(EXAMPLE), "--json"])
    assert isinstance(result.exception, CheckFailedError) and "budget not met: latency_s" in str(result.exception)
    doc = json.loads(result.stdout)
    assert doc["kind"] == "edgepart.plan" and doc["budgets"]["latency_s"]["met"] is False


def test_json_with_explain_keeps_stdout_json_and_explains_on_stderr():
    result = edgepart("plan", str(MODELS / "digits_cnn.onnx"), "--deploy", str(REPO / "examples" / "board-server.toml"),
                      "--json", "--explain")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["kind"] == "edgepart.plan"
    assert "best_single_split" in result.stderr and "link device-edge" in result.stderr


def test_sweep_refuses_a_weighted_objective_without_a_weight():
    result = edgepart("sweep", str(MODELS / "digits_cnn.onnx"), "--deploy", str(EXAMPLE), "--objective", "weighted")
    assert_one_line_error(result, 2, "--objective weighted needs --energy-weight")


def test_two_pins_that_disagree_on_a_layer_are_refused_naming_both(tmp_path):
    deploy = tmp_path / "pins.toml"
    deploy.write_text((REPO / "examples" / "board-server.toml").read_text().replace(
        "[pins]", '[pins]\nfirst_layers = 3\nnodes = { relu_1 = "edge" }'))
    result = edgepart("plan", str(MODELS / "residual_cnn.onnx"), "--deploy", str(deploy))
    assert_one_line_error(result, 2, "[pins].first_layers = 3", "[pins].nodes.relu_1", "'relu_1'")


def test_compile_refuses_a_plan_whose_deployment_file_changed(tmp_path):
    """Both hashes named, nothing built; with the file gone (a plan moved elsewhere) compile goes on
    and says it could not re-check."""
    deploy_file, plan, build = tmp_path / "deploy.toml", tmp_path / "plan.json", tmp_path / "build"
    deploy_file.write_text((REPO / "examples" / "board-server.toml").read_text())
    model = str(MODELS / "digits_cnn.onnx")
    assert edgepart("plan", model, "--deploy", str(deploy_file), "-o", str(plan)).returncode == 0
    planned = json.loads(plan.read_text())["deployment"]["sha256"]
    deploy_file.write_text(deploy_file.read_text() + "\n# edited after planning\n")
    result = edgepart("compile", model, "--plan", str(plan), "-o", str(build))
    assert_one_line_error(result, 2, f"made for deployment sha256 {planned[:12]}", str(deploy_file))
    assert not build.exists()
    deploy_file.unlink()
    result = edgepart("compile", model, "--plan", str(plan), "-o", str(build), timeout=600)
    assert result.returncode == 0, result.stderr
    assert "is not here; its hash and budgets are not re-checked" in result.stderr
