"""The plan prices what compile ships: the backend chosen from measured profiles per backend is the
one built, and the artifact is held to its price (verify and run --strict)."""

from __future__ import annotations

import json

import pytest

from edgepart.profile import idle
from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS

HOST_TIER = '[[tier]]\nname = "host"\ndevice = "local"\ntarget = "x86-64"\n'


def _total(profile: dict) -> float:
    """The price of the whole model as one tier: its layers, as a tier runs them between requests."""
    layers = profile["precisions"]["fp32"]["layers"].values()
    return idle.factor(profile) * sum(layer["calibrated_s"] for layer in layers)


def test_backend_auto_is_refused_in_one_line(tmp_path):
    deploy = tmp_path / "deploy.toml"
    deploy.write_text(HOST_TIER + 'backend = "auto"\n')
    assert_one_line_error(edgepart("plan", str(MODELS / "digits_cnn.onnx"), "--deploy", str(deploy)), 2,
                          "tier[0].backend", '"auto" is gone', 'backends = ["tvm", "onnxruntime"]')


@pytest.mark.tvm
def test_the_cheaper_measured_backend_is_chosen_and_built(tmp_path):
    """Profiles of both backends measured here; the plan picks the cheaper, compile builds exactly it."""
    model = str(MODELS / "digits_cnn.onnx")
    profiles = tmp_path / "profiles"
    for backend in ("onnxruntime", "tvm"):
        result = edgepart("profile", model, "--backend", backend, "--repeat", "20", "--warmup", "5",
                          "-o", str(profiles / f"{backend}.json"), "-q", timeout=600)
        assert result.returncode == 0, result.stderr
    totals = {b: _total(json.loads((profiles / f"{b}.json").read_text())) for b in ("onnxruntime", "tvm")}
    cheaper = min(totals, key=totals.get)
    deploy = tmp_path / "deploy.toml"
    deploy.write_text(HOST_TIER + 'backends = ["tvm", "onnxruntime"]\n')
    plan = tmp_path / "plan.json"
    result = edgepart("plan", model, "--deploy", str(deploy), "--profiles", str(profiles), "-o", str(plan))
    assert result.returncode == 0, result.stderr
    doc = json.loads(plan.read_text())
    assert doc["deployment"]["tiers"][0]["backend"] == cheaper == doc["predicted"]["per_tier"]["host"]["backend"]
    assert doc["predicted"]["per_tier"]["host"]["compute_s"] == pytest.approx(totals[cheaper])
    result = edgepart("compile", model, "--plan", str(plan), "-o", str(tmp_path / "build"), "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    tier = json.loads(result.stdout)["tiers"][0]
    assert tier["backend"] == cheaper and tier["priced_s"] == pytest.approx(totals[cheaper])
    assert tier["timing"]["measured_s"] > 0 and tier["timing"]["not_measurable"] is None


def test_strict_fails_on_an_artifact_slower_than_its_price_and_passes_an_honest_one(tmp_path):
    """A real measured artifact; the lie is in the price: a profile claiming the model runs 100x faster."""
    model = str(MODELS / "residual_cnn.onnx")
    deploy = tmp_path / "deploy.toml"
    deploy.write_text(HOST_TIER + 'backend = "onnxruntime"\n')
    honest = tmp_path / "honest"
    result = edgepart("profile", model, "--repeat", "20", "--warmup", "5", "-o", str(honest / "local.json"), "-q")
    assert result.returncode == 0, result.stderr
    lying = tmp_path / "lying"
    lying.mkdir()
    profile = json.loads((honest / "local.json").read_text())
    for layer in profile["precisions"]["fp32"]["layers"].values():
        layer["calibrated_s"] /= 100
    (lying / "local.json").write_text(json.dumps(profile))
    builds = {}
    for name, folder in (("honest", honest), ("lying", lying)):
        plan, build = tmp_path / f"{name}.json", tmp_path / f"build-{name}"
        assert edgepart("plan", model, "--deploy", str(deploy), "--profiles", str(folder), "-o",
                        str(plan)).returncode == 0
        result = edgepart("compile", model, "--plan", str(plan), "-o", str(build))
        assert result.returncode == 0, result.stderr
        builds[name] = (build, result.stdout)
    assert "x" in builds["lying"][1].splitlines()[-1]  # compile printed the measured/priced ratio
    report = json.loads(edgepart("verify", str(builds["honest"][0]), "--strict", "--json").stdout)
    assert report["tiers"][0]["ratio"] <= 1.5 and report["held_to_price"]["over"] == []
    result = edgepart("verify", str(builds["lying"][0]), "--strict")
    assert_one_line_error(result, 1, "tier 'host' ran", "x its price", "--strict allows 1.5x")
    assert edgepart("verify", str(builds["lying"][0])).returncode == 0  # without --strict: reported only
    result = edgepart("run", str(builds["lying"][0]), "--strict", "--requests", "5", "--links", "ideal", "-q")
    assert_one_line_error(result, 1, "tier 'host' ran", "--strict allows 1.5x")
