"""The onnxruntime profiler: every layer gets a time from the fused session; predictions; files."""

import json

import pytest

from edgepart import graph
from edgepart.hardware.devices import load_device
from edgepart.profile import document
from edgepart.profile.measure import measure
from edgepart.profile.ort_profiler import RunOptions, profile_layers
from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import EXAMPLE_MODELS, MODELS

QUICK = RunOptions(threads=1, warmup=2, repeat=5)


@pytest.mark.parametrize("path", EXAMPLE_MODELS, ids=lambda p: p.stem)
def test_every_layer_is_mapped_to_a_fused_kernel(path):
    loaded = graph.load(path)
    passes = profile_layers(loaded, QUICK)
    assert passes.mapping["unattributed_kernels"] == []
    assert passes.mapping["layers_without_kernel"] == []
    assert set(passes.layers) == {n.name for n in loaded.graph.layers}
    assert sum(s.median for s in passes.layers.values()) > 0 and passes.end_to_end.median > 0


def test_segments_are_cut_out_and_timed():
    loaded = graph.load(MODELS / "transformer_encoder.onnx")
    measured = measure(loaded, QUICK, segments=3)
    assert len(measured.segments) == 3
    for segment in measured.segments:
        assert segment["measured_s"] > 0 and segment["predicted_s"] > 0 and segment["layers"] >= 2


def test_measured_and_predicted_documents_share_the_format(tmp_path):
    loaded = graph.load(MODELS / "digits_cnn.onnx")
    measured = document.measured_document(loaded, load_device("local"), QUICK, measure(loaded, QUICK))
    predicted = document.predicted_document(loaded, load_device("rpi4"), ["fp32", "int8"])
    for doc in (measured, predicted):
        assert doc["kind"] == "edgepart.profile" and doc["model"]["sha256"] == loaded.sha256
        layers = doc["precisions"]["fp32"]["layers"]
        assert set(layers) == {n.name for n in loaded.graph.layers}
        assert all(v["calibrated_s"] > 0 and v["energy_j"] > 0 for v in layers.values())
    assert predicted["predicted"] and not measured["predicted"]
    assert "modelled" in measured["provenance"]["energy"]


def test_profile_cli_predict_and_bad_input(tmp_path):
    out = tmp_path / "rpi4.json"
    result = edgepart("profile", str(MODELS / "chain_cnn.onnx"), "--device", "rpi4", "--predict", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["device"] == "rpi4"
    assert_one_line_error(edgepart("profile", str(MODELS / "chain_cnn.onnx"), "--device", "rpi5"), 2,
                          "unknown device 'rpi5'; known: h100")
    assert_one_line_error(edgepart("profile", str(MODELS / "chain_cnn.onnx"), "--device", "rpi4"), 2,
                          "is not this host")


def test_plan_refuses_a_profile_of_another_model(tmp_path):
    folder = tmp_path / "profiles"
    folder.mkdir()
    edgepart("profile", str(MODELS / "chain_cnn.onnx"), "--device", "rpi4", "--predict", "-o",
             str(folder / "rpi4.json"))
    result = edgepart("plan", str(MODELS / "residual_cnn.onnx"), "--deploy", "examples/board-server.toml",
                      "--profiles", str(folder))
    chain_sha = graph.load(MODELS / "chain_cnn.onnx").sha256[:12]
    residual_sha = graph.load(MODELS / "residual_cnn.onnx").sha256[:12]
    assert_one_line_error(result, 2, f"profile of model sha256 {chain_sha}", residual_sha)
