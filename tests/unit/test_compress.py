"""Compression parts: codecs, calibration data, QDQ quantisation, sensitivity measurement, and how
the cost model uses what was measured."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgepart import graph
from edgepart.compress import codecs, composed, data, precision, quantize, scoring, sensitivity
from edgepart.cost import build as cost_build
from edgepart.cost import compression as cost_compression
from edgepart.errors import BadInputError
from edgepart.hardware import deploy
from edgepart.hardware.devices import load_device
from tests import codec_graph
from tests.conftest import MODELS

DIGITS = MODELS / "digits_cnn.onnx"


@pytest.fixture(scope="module")
def digits():
    return graph.load(DIGITS)


@pytest.fixture(scope="module")
def calibration(digits):
    return data.load(str(MODELS / "digits_calib.npz"), digits).head(60)


@pytest.fixture(scope="module")
def digits_sensitivity(digits, calibration):
    return sensitivity.measure(digits, calibration, memory_bandwidth_bps=load_device("local").memory_bandwidth)


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_codec_roundtrip_error_is_bounded(codec):
    x = np.random.default_rng(0).standard_normal((2, 3, 17)).astype(np.float32) * 5
    y = codecs.roundtrip(x, codec)
    assert y.shape == x.shape and y.dtype == x.dtype
    bound = {"raw": 0, "fp16": 4e-3 * np.abs(x).max(), "int8": (x.max() - x.min()) / 255 * 0.51}[codecs.base(codec)]
    assert np.abs(y - x).max() <= bound + 1e-6


def test_integer_tensors_pass_through_every_codec():
    ids = np.arange(12, dtype=np.int64).reshape(3, 4)
    for codec in codecs.CODECS:
        assert np.array_equal(codecs.roundtrip(ids, codec), ids)


def test_int8_codec_is_onnx_dynamic_quantize_linear():
    """The runtime's int8 codec and the in-graph emulation the sensitivity uses give the same bytes."""
    import onnxruntime as ort

    x = np.random.default_rng(1).standard_normal((4, 33)).astype(np.float32) * 3 + 1
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("q", TensorProto.UINT8, x.shape),
                           helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
                           helper.make_tensor_value_info("z", TensorProto.UINT8, [])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    q, s, z = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    ours, scale, zero = codecs.quantize_uint8(x)
    assert np.float32(scale) == s and zero == int(z)
    assert np.abs(ours.astype(int) - q.astype(int)).max() <= 1  # rounding of a float32 division at a tie
    assert np.mean(ours == q) > 0.99


def test_int8_codec_sends_a_tensor_holding_infinities_raw():
    """An additive attention mask (-inf where a token is padding) has no affine uint8 code."""
    mask = np.array([[0.0, -np.inf, 1.5], [np.nan, 2.0, 0.0]], np.float32)
    for codec in ("int8", "int8+zlib"):
        payload, meta = codecs.encode(mask, codec)
        assert meta["codec"] == "raw"
        assert np.array_equal(codecs.decode(payload, meta), mask, equal_nan=True)


def test_outputs_holding_nan_score_worst():
    reference = {"y": np.eye(2, 3, dtype=np.float32)}
    broken = {"y": np.array([[1, 0, 0], [np.nan, 1, 0]], np.float32)}
    assert scoring.scorer("cosine", reference, None)(broken) == pytest.approx(0.0)  # (1 + -1) / 2
    assert scoring.scorer("accuracy", reference, np.array([0, 1]))(broken) == 0.5
    assert scoring.scorer("agreement", reference, None)(broken) == 0.5


def masked_attention(folder) -> graph.LoadedModel:
    """scores + mask (-inf above the diagonal) -> Softmax -> MatMul: a causal attention's core."""
    mask = np.triu(np.full((4, 4), -np.inf, np.float32), k=1)
    weight = np.random.default_rng(3).standard_normal((4, 4)).astype(np.float32)
    nodes = [helper.make_node("Add", ["scores", "mask"], ["masked"], name="mask_add"),
             helper.make_node("Softmax", ["masked"], ["weights"], name="softmax", axis=-1),
             helper.make_node("MatMul", ["weights", "w"], ["y"], name="matmul")]
    g = helper.make_graph(nodes, "masked", [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4])],
                          [onnx.numpy_helper.from_array(mask, "mask"), onnx.numpy_helper.from_array(weight, "w")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), folder / "masked.onnx")
    return graph.load(folder / "masked.onnx")


def test_sensitivity_of_a_model_with_an_infinite_attention_mask(tmp_path, monkeypatch):
    """Every drop is a number (no NaN from inf - inf); the layers that read or make the -inf stay
    fp32 under int8; the masked scores cross raw under the int8 codec."""
    monkeypatch.setenv("EDGEPART_CACHE", str(tmp_path / "cache"))
    loaded = masked_attention(tmp_path)
    doc = sensitivity.measure(loaded, data.seeded(loaded, 4))
    drops = [r["drop"] for e in doc["layers"].values() for r in e.values()]
    drops += [r["drop"] for e in doc["tensors"].values() for r in e["codecs"].values() if "drop" in r]
    assert drops and all(np.isfinite(drops))
    assert not doc["layers"]["mask_add"]["int8"]["applies"] and not doc["layers"]["softmax"]["int8"]["applies"]
    masked = doc["tensors"]["masked"]["codecs"]
    assert masked["int8"]["drop"] == 0.0 and masked["int8"]["bytes"] == doc["tensors"]["masked"]["bytes"]


def test_zlib_is_lossless_and_shrinks_sparse_tensors():
    x = np.maximum(np.random.default_rng(2).standard_normal(4096).astype(np.float32), 0)  # ReLU output
    payload, meta = codecs.encode(x, "zlib")
    assert len(payload) < x.nbytes * 0.8
    assert np.array_equal(codecs.decode(payload, meta), x)
    assert len(codecs.encode(x, "int8+zlib")[0]) < len(codecs.encode(x, "int8")[0])


def test_dataset_checks_name_the_file_and_array(tmp_path, digits):
    path = tmp_path / "bad.npz"
    np.savez(path, pixels=np.zeros((3, 1, 8, 8), np.float32))
    with pytest.raises(BadInputError, match="no array named 'image'"):
        data.load(str(path), digits)
    np.savez(path, image=np.zeros((3, 1, 7, 8), np.float32))
    with pytest.raises(BadInputError, match=r"'image' has shape \[3, 1, 7, 8\]"):
        data.load(str(path), digits)
    np.savez(path, image=np.zeros((3, 64), np.float32), labels=np.zeros(4))
    with pytest.raises(BadInputError, match="different numbers of samples"):
        data.load(str(path), digits)
    np.savez(path, image=np.zeros((3, 64), np.float32), labels=np.zeros(3))
    loaded = data.load(str(path), digits)  # flattened samples are reshaped to the input's shape
    assert loaded.inputs["image"].shape == (3, 1, 1, 8, 8) and loaded.labels.dtype == np.int64


def test_quantizer_puts_only_the_chosen_layers_in_int8(digits, calibration):
    model = onnx.load(DIGITS)
    with quantize.Quantizer(model, calibration) as quantizer:
        one = quantizer.quantize(["conv2"])
        both = quantizer.quantize(["conv2", "fc1", "relu_1"])
    assert quantize.quantized_nodes(one) == {"conv2"}
    assert quantize.quantized_nodes(both) == {"conv2", "fc1"}  # a Relu alone is not quantised
    onnx.checker.check_model(both)


def test_precision_apply_needs_calibration_for_int8(digits):
    with pytest.raises(BadInputError, match="tier 'device'.*--calibration"):
        precision.apply(onnx.load(DIGITS), {"conv1": "int8"}, "device")


def test_mixed_fp16_and_int8_model_runs_and_stays_close(digits, calibration):
    model = precision.apply(onnx.load(DIGITS), {"conv1": "int8", "fc1": "int8", "conv2": "fp16"}, "t", calibration)
    reference = data.run(onnx.load(DIGITS), calibration)["fc2"]
    mixed = data.run(model, calibration)["fc2"]
    assert np.mean(reference.argmax(-1) == mixed.argmax(-1)) > 0.95


def test_codec_emulation_equals_the_runtime_codec(digits, calibration):
    """with_codec's in-graph int8/fp16 gives what the runtime's roundtrip feeds the next layer."""
    model = onnx.load(DIGITS)
    head = calibration.head(4)
    relu = data.run(model, head, ["relu_2"])["relu_2"]
    for codec in ("fp16", "int8"):
        emulated = data.run(codec_graph.with_codec(model, "relu_2", codec), head, ["relu_2__" + codec])
        manual = np.stack([codecs.roundtrip(r, codec) for r in relu])
        assert np.abs(emulated["relu_2__" + codec] - manual).max() <= 1e-6 + (
            np.abs(relu).max() / 255 if codec == "int8" else 0)


def test_sensitivity_document(digits_sensitivity, digits):
    doc = digits_sensitivity
    assert doc["kind"] == "edgepart.sensitivity" and doc["metric"]["name"] == "accuracy"
    assert set(doc["layers"]) == {n.name for n in digits.graph.layers}
    assert doc["layers"]["conv1"]["int8"]["applies"] and not doc["layers"]["relu_1"]["int8"]["applies"]
    image = doc["tensors"]["image"]["codecs"]
    assert image["raw"]["bytes"] == 256 and image["fp16"]["bytes"] == 128 and image["int8"]["bytes"] == 64 + 5
    assert image["int8+zlib"]["drop"] == image["int8"]["drop"]
    assert 0.9 < doc["metric"]["fp32"] <= 1.0


def test_sensitivity_detects_a_drop_without_labels():
    """Cosine against fp32 outputs: int8 on a random-weight CNN must cost something measurable."""
    loaded = graph.load(MODELS / "chain_cnn.onnx")
    doc = sensitivity.measure(loaded, data.seeded(loaded, 4), which=("int8",))
    drops = [entry["int8"]["drop"] for entry in doc["layers"].values() if entry["int8"]["applies"]]
    assert doc["metric"]["name"] == "cosine" and drops and max(drops) > 1e-5
    assert all(entry["codecs"]["int8"]["drop"] >= -1e-9 for entry in doc["tensors"].values())


def test_each_measured_drop_is_that_choice_alone_on_the_whole_model():
    """The one-session measurement (edgepart.compress.injection) against the whole model rebuilt with
    that one choice, layer precisions and codecs, on a CNN whose int8 and fp16 cost something."""
    from edgepart.graph.sessions import named_model

    loaded = graph.load(MODELS / "chain_cnn.onnx")
    dataset = data.seeded(loaded, 4)
    doc = sensitivity.measure(loaded, dataset)
    model = named_model(loaded)
    reference = data.run(model, dataset)
    score = sensitivity.scorer("cosine", reference, None)

    def whole(variant: onnx.ModelProto) -> float:
        return score(reference) - score(data.run(variant, dataset))

    compared = 0
    with quantize.Quantizer(model, dataset) as quantizer:
        for name, entry in doc["layers"].items():
            if entry.get("int8", {}).get("applies"):
                assert entry["int8"]["drop"] == pytest.approx(whole(quantizer.quantize([name])), rel=0.05, abs=1e-6)
                compared += 1
            assert entry["fp16"]["drop"] == pytest.approx(whole(precision.to_fp16(model, [name])), rel=0.05, abs=1e-7)
    for name, entry in list(doc["tensors"].items())[:4]:
        for codec in ("fp16", "int8"):
            assert entry["codecs"][codec]["drop"] == pytest.approx(whole(codec_graph.with_codec(model, name, codec)),
                                                                   rel=0.02, abs=1e-7)
    assert compared >= 2 and max(e["int8"]["drop"] for e in doc["layers"].values() if e["int8"]["applies"]) > 1e-5
    assert doc["coverage"] == {"measured": sensitivity.steps(loaded, ("fp16", "int8")),
                               "choices": sensitivity.steps(loaded, ("fp16", "int8")), "complete": True,
                               "estimated": False}


def test_exact_with_max_seconds_stops_with_what_was_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPART_CACHE", str(tmp_path))
    loaded = graph.load(MODELS / "chain_cnn.onnx")
    doc = sensitivity.measure(loaded, data.seeded(loaded, 2), max_seconds=1e-9, exact=True)
    assert doc["coverage"]["complete"] is False and doc["coverage"]["max_seconds"] == 1e-9
    assert doc["coverage"]["measured"] < doc["coverage"]["choices"]
    assert len(doc["layers"]) < len(loaded.graph.layers)


def exact_and_estimated(tmp_path, monkeypatch) -> tuple:
    """chain_cnn on 4 seeded samples measured twice, each with a cache of its own: every choice run,
    and with every other group's choices estimated; (loaded, dataset, exact, estimated). The
    estimating measurement's cache stays set for what the test does next."""
    monkeypatch.setenv("EDGEPART_CACHE", str(tmp_path / "exact"))
    loaded = graph.load(MODELS / "chain_cnn.onnx")
    dataset = data.seeded(loaded, 4)
    exact = sensitivity.measure(loaded, dataset, exact=True)
    monkeypatch.setenv("EDGEPART_CACHE", str(tmp_path / "estimated"))
    monkeypatch.setattr(sensitivity.estimate, "probe_spacing", lambda *args: 2)
    return loaded, dataset, exact, sensitivity.measure(loaded, dataset)


def test_over_budget_the_choices_between_probes_are_estimated(tmp_path, monkeypatch):
    """Too little time to run every choice: probes run, the rest estimated from the change's size and
    the probes' gains, complete and marked; on this CNN the estimates' median ratio to the runs is
    within 4x, each within 30x (per-choice estimates are rough: a random-weight CNN on 4 samples;
    the composed plan is measured by verify)."""
    _, _, exact, estimated = exact_and_estimated(tmp_path, monkeypatch)
    assert estimated["coverage"]["complete"] and estimated["coverage"]["estimated"]
    pairs = [(result["drop"], exact["layers"][name][p]["drop"]) for name, entry in estimated["layers"].items()
             for p, result in entry.items() if result.get("estimated") and exact["layers"][name][p]["drop"] > 1e-6]
    pairs += [(entry["codecs"][c]["drop"], exact["tensors"][name]["codecs"][c]["drop"])
              for name, entry in estimated["tensors"].items() for c in ("fp16", "int8")
              if entry["codecs"][c].get("estimated") and exact["tensors"][name]["codecs"][c]["drop"] > 1e-6]
    ratios = [guess / measured for guess, measured in pairs]
    assert len(ratios) >= 4 and 0.25 <= float(np.median(ratios)) <= 4.0, ratios
    assert all(1 / 30 <= ratio <= 30 for ratio in ratios), ratios


def test_cost_model_uses_measured_compression(digits_sensitivity, digits):
    deployment = deploy.load(str(MODELS.parent / "examples" / "compressed.toml"))
    measured = cost_compression.from_sensitivity(sensitivity.Sensitivity.of(digits_sensitivity))
    cost = cost_build.build(digits.graph, deployment, None, measured)
    q, c = cost.precisions.index("int8"), cost.codecs.index("int8+zlib")
    relu = cost.nodes.index("relu_1")  # onnxruntime leaves it in fp32: int8 is no choice for it
    assert np.isinf(cost.node_latency[relu, :, q]).all()
    assert np.isfinite(cost.node_latency[relu, :, cost.precisions.index("fp32")]).all()
    t = [x.name for x in cost.tensors].index("relu_1")
    assert cost.wire_bytes[t, c] == round(digits_sensitivity["tensors"]["relu_1"]["codecs"]["int8+zlib"]["bytes"])
    unmeasured = cost_build.build(digits.graph, deployment)
    assert unmeasured.wire_bytes[t, c] == unmeasured.wire_bytes[t, cost.codecs.index("int8")]
    assert (unmeasured.transfer_latency[t, :, c] > unmeasured.transfer_latency[t, :, cost.codecs.index("int8")]).all()


def test_a_rerun_measures_only_what_is_missing(tmp_path, monkeypatch):
    """The cache (EDGEPART_CACHE/sensitivity/, keyed by model, data and metric): fp16 measured first,
    then fp16 and int8 runs only the int8 choices, a third run nothing, other data everything."""
    from edgepart.compress import injection

    monkeypatch.setenv("EDGEPART_CACHE", str(tmp_path))
    loaded = graph.load(MODELS / "chain_cnn.onnx")
    dataset = data.seeded(loaded, 2)
    runs = []
    original = injection.Injectable.run
    monkeypatch.setattr(injection.Injectable, "run", lambda self, *a, **k: runs.append(1) or original(self, *a, **k))
    half = sensitivity.measure(loaded, dataset, which=("fp16",), exact=True)
    first = len(runs)
    both = sensitivity.measure(loaded, dataset, exact=True)
    applies = sum(1 for entry in both["layers"].values() if entry["int8"]["applies"])
    assert both["coverage"]["complete"] and 0 < len(runs) - first <= applies
    assert all(both["layers"][name]["fp16"] == entry["fp16"] for name, entry in half["layers"].items())
    before = len(runs)
    again = sensitivity.measure(loaded, dataset, exact=True)
    assert len(runs) == before and again["layers"] == both["layers"] and again["tensors"] == both["tensors"]
    sensitivity.measure(loaded, data.seeded(loaded, 3), exact=True)  # other data: measured afresh
    assert len(runs) > before


def test_confirming_a_plans_choices_runs_what_was_estimated(tmp_path, monkeypatch):
    """--confirm: the plan's lossy choices are run on the whole model even where they were estimated
    (and cached as estimates); `confirmed` keeps each estimate beside the run, which equals an exact run."""
    loaded, dataset, exact, estimated = exact_and_estimated(tmp_path, monkeypatch)
    layer = next(n for n, e in estimated["layers"].items() if e.get("int8", {}).get("estimated"))
    tensor = next(n for n, e in estimated["tensors"].items() if e["codecs"]["int8"].get("estimated"))
    chosen = frozenset({(layer, "int8"), (f"tensor:{tensor}", "int8")})
    confirmed = sensitivity.measure(loaded, dataset, confirm=chosen)
    records = {(c.get("layer") or "tensor:" + c["tensor"], c["choice"]): c for c in confirmed["confirmed"]}
    assert set(records) == chosen
    assert records[(layer, "int8")]["estimate"] == estimated["layers"][layer]["int8"]["drop"]
    assert records[(layer, "int8")]["run"] == pytest.approx(exact["layers"][layer]["int8"]["drop"], rel=1e-6, abs=1e-12)
    assert records[(f"tensor:{tensor}", "int8")]["run"] == pytest.approx(
        exact["tensors"][tensor]["codecs"]["int8"]["drop"], rel=1e-6, abs=1e-12)
    assert "estimated" not in confirmed["layers"][layer]["int8"]
    assert "estimated" not in confirmed["tensors"][tensor]["codecs"]["int8"]


def test_choices_together_are_the_model_with_all_of_them():
    """composed.model_with: two int8 layers and an int8 codec read by a later layer equal the model
    rebuilt by hand (the codec as tests/codec_graph.py emulates it, then QDQ); its cost is the mean
    per-sample drop with an upper bound above it."""
    from edgepart.graph.sessions import named_model

    loaded = graph.load(MODELS / "chain_cnn.onnx")
    model, dataset = named_model(loaded), data.seeded(loaded, 3)
    layers = [n.name for n in model.graph.node if n.op_type == "Conv"][:2]
    tensor = model.graph.node[2].output[0]
    readers = frozenset(n.name for n in model.graph.node if tensor in n.input)
    together = composed.Composition({name: "int8" for name in layers}, {(tensor, ("int8",)): readers},
                                    frozenset({*((name, "int8") for name in layers), (f"tensor:{tensor}", "int8")}))
    with quantize.Quantizer(codec_graph.with_codec(model, tensor, "int8"), dataset) as quantizer:
        by_hand = data.run(quantizer.quantize(layers), dataset)
    ours = data.run(composed.model_with(model, together, dataset), dataset)
    assert all(np.allclose(ours[name], by_hand[name], atol=1e-6) for name in by_hand)
    reference = data.run(model, dataset)
    cost = composed.cost(model, together, dataset, "cosine", alone=1e-3)
    drops = composed.per_sample_drops("cosine", reference, ours, None)
    assert cost["together"] == pytest.approx(float(np.mean(drops))) and cost["bound"] > cost["together"] > 0
    assert cost["samples"] == 3 and cost["choices"] == 3 and cost["alone"] == 1e-3


def test_plans_scale_drops_by_how_much_more_choices_cost_together(digits_sensitivity):
    """A composed run that cost 3x the sum of its choices alone (upper bound) makes every drop 3x."""
    doc = {**digits_sensitivity, "composed": [{"key": "a", "choices": 4, "alone": 0.01, "together": 0.02,
                                               "bound": 0.03, "samples": 60},
                                              {"key": "b", "choices": 2, "alone": 0.0, "together": 0.01,
                                               "bound": 0.02, "samples": 60}]}
    scale, basis = sensitivity.Sensitivity.of(doc).interaction()
    assert scale == pytest.approx(3.0) and basis["key"] == "a"
    plain = cost_compression.from_sensitivity(sensitivity.Sensitivity.of(digits_sensitivity))
    scaled = cost_compression.from_sensitivity(sensitivity.Sensitivity.of(doc))
    assert scaled.drop and all(scaled.drop[key] == pytest.approx(3 * plain.drop[key]) for key in plain.drop)


def test_a_plans_composition_reads_cut_tensors_through_their_codecs():
    """Plan.composition: the layers in their precisions, and each cut tensor read through its codec
    by exactly the readers on the tier above (chain_cnn over Ethernet sends an int8 feature map)."""
    from edgepart.graph.sessions import named_model
    from edgepart.plan import planner
    from edgepart.plan.plan_file import Plan

    loaded = graph.load(MODELS / "chain_cnn.onnx")
    deployment = deploy.load(str(MODELS.parent / "examples" / "compressed.toml"))
    plan = Plan.of(planner.plan(loaded, deployment, planner.PlanRequest(allow_lossy=True, reproducible=True)))
    model = named_model(loaded)
    together = plan.composition(model)
    sent = {(up.tensor, codecs.base(up.codec)) for link in plan.links for up in link.up
            if codecs.base(up.codec) != "raw"}
    assert sent and {(tensor, chain[0]) for tensor, chain in together.reads} == sent
    for (tensor, _), readers in together.reads.items():
        assert readers == {n.name for n in model.graph.node
                           if tensor in n.input and plan.tier_of(n.name) != plan.tiers[0].name}
    assert together.precision == plan.precisions and together.choices == frozenset(plan.lossy_choices())


def test_an_int8_layer_leaves_what_its_fp32_neighbours_read(tmp_path):
    """x feeds an int8 MatMul and an fp32 Add (a residual stream): only the MatMul reads x rounded
    to 8 bits; the Add reads x as it was, and whoever reads the MatMul's output reads it in int8."""
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul"),
             helper.make_node("Add", ["x", "y"], ["z"], name="residual")]
    g = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, 8])],
                          [onnx.numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "shared.onnx")
    loaded = graph.load(tmp_path / "shared.onnx")
    with quantize.Quantizer(loaded.model, data.seeded(loaded, 4)) as quantizer:
        model = quantizer.quantize(["matmul"])
    reads = {n.name: list(n.input) for n in model.graph.node}
    assert reads["residual"][0] == "x" and reads["residual"][1] != "y"  # x as it was; y after its Q/DQ
    assert reads["matmul"][0] != "x" and quantize.quantized_nodes(model) == {"matmul"}


def test_estimates_take_the_gain_of_probes_of_their_own_role():
    from edgepart.compress import estimate

    gains = estimate.Gains()
    gains.add("layer int8", 0, 1e-3, 1e-3, role="MatMul(1x128x384)")
    gains.add("layer int8", 10, 3e-3, 1e-3, role="MatMul(1x128x384)")
    gains.add("layer int8", 5, 0.1, 1e-3, role="Softmax")
    assert gains.drop("layer int8", 5, 1e-4, role="MatMul(1x128x384)") == pytest.approx(2e-4)  # 2 between 1 and 3
    assert gains.drop("layer int8", 5, 1e-4, role="Add") == pytest.approx(1e-2)  # no probe of its role: by position
    assert gains.drop("codec int8", 5, 1e-4, role="Softmax") == 0.0  # no probe of its kind
    loaded = graph.load(MODELS / "chain_cnn.onnx")
    first = loaded.graph.layers[0]
    assert estimate.role(loaded.graph, first.name).startswith(f"{first.op_type}(") and \
        estimate.role(loaded.graph, None) == "input"


def test_cosine_refuses_a_model_whose_outputs_are_zero(tmp_path):
    """torchvision's ViT with weights=None zero-initialises its head: every drop would read 0."""
    nodes = [helper.make_node("Mul", ["x", "zero"], ["y"], name="head")]
    g = helper.make_graph(nodes, "zero", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                          [onnx.numpy_helper.from_array(np.zeros(4, np.float32), "zero")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "zero.onnx")
    loaded = graph.load(tmp_path / "zero.onnx")
    with pytest.raises(BadInputError, match="outputs are zero for 100% of the samples"):
        sensitivity.measure(loaded, data.seeded(loaded, 2))
