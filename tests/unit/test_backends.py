"""The backend is a plan decision: candidates per tier, priced per backend, the cheapest chosen."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edgepart import graph
from edgepart.errors import BadInputError
from edgepart.hardware import backends, deploy
from edgepart.plan import planner
from edgepart.profile import idle
from edgepart.profile.document import Profile
from edgepart.runtime import price
from tests.conftest import MODELS

DIGITS = MODELS / "digits_cnn.onnx"


def _deployment(*tiers: dict) -> deploy.Deployment:
    doc = {"tier": [{"name": f"t{i}", **t} for i, t in enumerate(tiers)]}
    doc["link"] = [{"from": f"t{i}", "to": f"t{i + 1}", "preset": "ethernet"} for i in range(len(tiers) - 1)]
    return deploy.parse(doc)


def _profile(loaded, device: str, backend: str, seconds_per_layer: float, odd_s: float | None = None) -> dict:
    """A measured profile as `edgepart profile` writes one: every layer taking `seconds_per_layer`, or
    with `odd_s` every other layer taking that instead (so that no backend is cheaper on every layer)."""
    layers = {n.name: {"calibrated_s": odd_s if odd_s is not None and i % 2 else seconds_per_layer}
              for i, n in enumerate(loaded.graph.layers)}
    return {"kind": "edgepart.profile", "schema_version": 1, "device": device, "predicted": False,
            "model": {"path": str(loaded.path), "sha256": loaded.sha256},
            "provenance": {"method": "measured", "backend": backend}, "precisions": {"fp32": {"layers": layers}}}


def test_default_backends_are_what_the_target_can_build():
    tiers = _deployment({"device": "local", "target": "x86-64"}, {"device": "rpi4", "target": "rpi4"},
                        {"device": "h100", "target": "cuda-sm90"}, {"device": "rpi4", "target": "armv7"}).tiers
    assert [t.backends for t in tiers] == [("tvm", "onnxruntime"), ("tvm", "onnxruntime"), ("tvm",), ("tvm",)]
    one = _deployment({"device": "local", "target": "x86-64", "backend": "onnxruntime"}).tiers[0]
    assert one.backends == ("onnxruntime",)
    assert _deployment({"device": "local", "target": "x86-64", "backend": "tensorrt"}).tiers[0].backends == \
        ("tensorrt",)  # BYOC names stay accepted (compile reports their coverage)


@pytest.mark.parametrize("tier, message", [
    ({"backend": "auto"}, '"auto" is gone; list the candidates, backends = ["tvm", "onnxruntime"]'),
    ({"backends": ["tvm", "onnxruntime"], "backend": "tvm"}, "give 'backend' or 'backends', not both"),
    ({"backends": []}, "expected a non-empty list"),
    ({"backends": ["tvm", "tvm"]}, "expected a non-empty list of distinct backends"),
    ({"backends": ["tvm", "ort"]}, "unknown backend 'ort'"),
    ({"target": "cuda-sm90", "device": "h100", "backends": ["onnxruntime"]},
     "onnxruntime has no build for target 'cuda-sm90'"),
])
def test_bad_backends_are_one_error_naming_the_key(tier, message):
    with pytest.raises(BadInputError, match="tier\\[0\\]") as info:
        _deployment({"device": "local", "target": "x86-64", **tier})
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("tvm_s, ort_s, chosen", [(1e-4, 3e-4, "tvm"), (3e-4, 1e-4, "onnxruntime")])
def test_the_plan_chooses_the_cheaper_measured_backend(tvm_s, ort_s, chosen):
    loaded = graph.load(DIGITS)
    deployment = _deployment({"device": "local", "target": "x86-64"})
    profiles = (_profile(loaded, "local", "tvm", tvm_s), _profile(loaded, "local", "onnxruntime", ort_s))
    doc = planner.plan(loaded, deployment, planner.PlanRequest(profiles=tuple(map(Profile.of, profiles))))
    tier = doc["deployment"]["tiers"][0]
    assert tier["backend"] == chosen and tier["backends"] == ["tvm", "onnxruntime"]
    layers = len(loaded.graph.layers)
    assert doc["predicted"]["per_tier"]["t0"] == {**doc["predicted"]["per_tier"]["t0"], "backend": chosen,
                                                  "compute_s": pytest.approx(layers * min(tvm_s, ort_s))}
    assert doc["costs"]["source"]["t0"].startswith(f"{chosen}: profile of 'local'")
    assert doc["backends"]["tried"] == [{"backends": {"t0": chosen}, "objective": pytest.approx(
        layers * min(tvm_s, ort_s))}]  # the other costs more on every layer: left out before solving


def test_each_tier_gets_its_own_cheaper_backend():
    """Two tiers, two backends each, neither cheaper on every layer: four combinations solved, the
    cheapest kept; the baselines are priced with the backends that suit each."""
    loaded = graph.load(DIGITS)
    deployment = _deployment({"device": "local", "target": "x86-64"},
                             {"device": "xeon-edge-server", "target": "x86-64"})
    profiles = (_profile(loaded, "local", "tvm", 1e-4, 5e-4), _profile(loaded, "local", "onnxruntime", 4e-4, 3e-4),
                _profile(loaded, "xeon-edge-server", "tvm", 1e-3, 1e-4),
                _profile(loaded, "xeon-edge-server", "onnxruntime", 3e-4, 3e-4))
    doc = planner.plan(loaded, deployment, planner.PlanRequest(profiles=tuple(map(Profile.of, profiles))))
    assert len(doc["backends"]["tried"]) == 4
    best = min(doc["backends"]["tried"], key=lambda t: t["objective"])
    assert doc["backends"]["chosen"] == best["backends"]
    assert doc["predicted"]["latency_s"] == pytest.approx(best["objective"])
    assert doc["baselines"]["all_t0"]["backends"]["t0"] == "tvm"  # 3e-4 per two layers against 7e-4


def test_a_backend_not_measured_is_priced_at_its_calibrated_factor():
    loaded = graph.load(DIGITS)
    only = {b: planner.plan(loaded, _deployment({"device": "rpi4", "target": "rpi4", "backend": b}))
            for b in ("tvm", "onnxruntime")}
    ratio = backends.factor("tvm", "cpu").ratio
    assert ratio > 1 and backends.factor("tvm", "cpu").spread == (1.07, 2.05)
    assert only["tvm"]["predicted"]["per_tier"]["t0"]["compute_s"] == pytest.approx(
        ratio * only["onnxruntime"]["predicted"]["per_tier"]["t0"]["compute_s"])
    assert "x 1.37" in only["tvm"]["costs"]["source"]["t0"]
    both = planner.plan(loaded, _deployment({"device": "rpi4", "target": "rpi4"}))
    assert both["deployment"]["tiers"][0]["backend"] == "onnxruntime"
    assert len(both["backends"]["tried"]) == 1  # tvm costs more on every layer: left out before solving


def test_a_tier_priced_for_another_device_is_not_measurable_here():
    board = SimpleNamespace(device="rpi4")  # stand_in reads only the device the plan priced
    held = price.judged(None, 2e-3, price.stand_in(board, {"ran_with": "onnxruntime", "native": True}))
    assert held["ratio"] is None and not held["over"] and "rpi4" in held["not_measurable"]
    assert price.judged(4e-3, 2e-3, None) == {"measured_s": 4e-3, "priced_s": 2e-3, "ratio": 2.0, "over": True,
                                              "not_measurable": None}


def test_a_tier_is_priced_for_the_threads_its_backend_runs():
    """A CPU's peak counts its cores; onnxruntime runs the tier's `threads`, TVM's kernels one."""
    from edgepart.hardware.devices import load_device

    rpi4 = load_device("rpi4")
    assert rpi4.cores == 4 and rpi4.peak("fp32", 1) == rpi4.peak_ops["fp32"] / 4
    assert rpi4.peak("fp32", 8) == rpi4.peak("fp32") == rpi4.peak_ops["fp32"]
    assert load_device("h100").peak("fp32", 1) == load_device("h100").peak_ops["fp32"]  # a GPU: no threads
    loaded = graph.load(MODELS / "residual_cnn.onnx")

    def compute(backend: str, threads: int) -> float:
        tier = {"device": "rpi4", "target": "rpi4", "backend": backend, "threads": threads}
        return planner.plan(loaded, _deployment(tier))["predicted"]["per_tier"]["t0"]["compute_s"]

    assert compute("onnxruntime", 1) > 2 * compute("onnxruntime", 4)  # compute-bound convolutions
    assert compute("tvm", 4) == compute("tvm", 1) == pytest.approx(
        backends.factor("tvm", "cpu").ratio * compute("onnxruntime", 1))


def test_a_profiles_idle_factor_prices_each_tier_as_it_runs_between_requests():
    """The plan scales a measured profile's layers by its idle factor, for the backend priced from it
    directly and for one priced at a factor of it; the cost source says so."""
    loaded = graph.load(DIGITS)
    layers = len(loaded.graph.layers)
    profile = _profile(loaded, "local", "onnxruntime", 1e-4)
    profile["provenance"]["idle"] = idle.record(1.5e-3, 1.2e-3, idle.IDLE_GAP_S, 9, "test")
    for backend, ratio in (("onnxruntime", 1.0), ("tvm", backends.factor("tvm", "cpu").ratio)):
        deployment = _deployment({"device": "local", "target": "x86-64", "backend": backend})
        doc = planner.plan(loaded, deployment, planner.PlanRequest(profiles=(Profile.of(profile),)))
        assert doc["predicted"]["per_tier"]["t0"]["compute_s"] == pytest.approx(layers * 1e-4 * 1.25 * ratio)
        assert "x 1.250 for a run after 5 ms idle" in doc["costs"]["source"]["t0"]


def test_int8_is_priced_no_faster_than_fp32_on_a_backend_without_integer_kernels():
    """Issue #19: TVM runs int8 layers as quantize/dequantize around float kernels, so an unmeasured
    TVM int8 layer costs what its fp32 one does; onnxruntime's integer kernels keep the device's int8 rate."""
    from edgepart.cost import build as cost_build

    loaded = graph.load(DIGITS)
    for backend, cheaper in (("tvm", False), ("onnxruntime", True)):
        deployment = _deployment({"device": "rpi4", "target": "rpi4", "backend": backend,
                                  "precisions": ["fp32", "int8"]})
        (cost,) = cost_build.variants(loaded.graph, deployment)
        fp32, int8 = cost.precisions.index("fp32"), cost.precisions.index("int8")
        heavy = [v for v, node in enumerate(loaded.graph.nodes) if node.op_type in ("Conv", "Gemm")]
        latency = cost.node_latency[:, 0, :] if cost.node_latency.ndim == 3 else cost.node_latency
        assert heavy and all(bool(latency[v, int8] < latency[v, fp32]) == cheaper for v in heavy), backend


def test_operators_tvm_cannot_import_are_no_choice_on_tvm_tiers():
    from edgepart.hardware.backends import takes

    assert takes("tvm", "Conv") and takes("tvm", "If") and not takes("tvm", "LpNormalization")
    assert takes("onnxruntime", "LpNormalization")


@pytest.mark.tvm
def test_the_shipped_tvm_operator_list_is_the_installed_tvms():
    """edgepart/profiles/tvm_operators.json is what `make tvm-operators` writes from this TVM."""
    from edgepart import schema
    from edgepart.toolchain import tvm_operators

    shipped = schema.load_json(tvm_operators.FILE, "tvm_operators", 1)
    assert shipped == tvm_operators.installed()

