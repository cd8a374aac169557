"""The onnxruntime profiler: every layer gets a time from the fused session; predictions; files."""

import json

import pytest
from onnx import helper

from edgepart import graph
from edgepart.errors import BadInputError
from edgepart.graph.extract import boundary
from edgepart.graph.sessions import named_model
from edgepart.hardware.devices import load_device
from edgepart.profile import document, predict, prefix_timing, profilers
from edgepart.profile.calibrate import calibrate
from edgepart.profile.measure import CUT_POINTS, line_through, measure, rounds
from edgepart.profile.measure_timing import paired_medians, time_interleaved
from edgepart.profile.ort_profiler import (
    CutModel,
    RunOptions,
    Stats,
    _trace_samples,
    blocked_kernels,
    profile_layers,
    sample_inputs,
)
from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import EXAMPLE_MODELS, MODELS

QUICK = RunOptions(threads=1, warmup=2, repeat=5)


@pytest.mark.parametrize("path", EXAMPLE_MODELS, ids=lambda p: p.stem)
def test_every_layer_is_mapped_to_a_fused_kernel(path):
    loaded = graph.load(path)
    passes = profile_layers(loaded, QUICK)
    assert passes.mapping["unattributed_kernels"] == []
    assert passes.mapping["layers_without_kernel"] == []
    assert passes.mapping["profiler_slowdown"] > 0  # a ratio of two timings: no bound holds on a busy host
    assert set(passes.layers) == {n.name for n in loaded.graph.layers}
    assert sum(s.median for s in passes.layers.values()) > 0 and passes.end_to_end.median > 0


def test_warmup_of_a_slow_round_stops_after_seconds():
    assert RunOptions(warmup=10).warmup_for(2.0) == 3  # about 5 s of 2 s rounds
    assert RunOptions(warmup=10).warmup_for(1e-3) == 10
    assert RunOptions(warmup=10).warmup_for(60.0) == 1
    assert RunOptions(warmup=0).warmup_for(60.0) == 0


def test_tick_statistics_resolve_below_the_profilers_microsecond():
    # A 3.4 us kernel recorded in whole microseconds: 3 on 60% of runs, 4 on 40%.
    samples = [3e-6, 3e-6, 4e-6, 3e-6, 4e-6] * 20
    assert Stats.of(samples).median == pytest.approx(3e-6)
    assert Stats.of_ticks(samples).median == pytest.approx(3.4e-6)
    assert Stats.of_ticks(samples).p90 == pytest.approx(4e-6)


def test_prefix_differences_add_up_to_the_whole_model():
    loaded = graph.load(MODELS / "digits_cnn.onnx")
    layers, whole, run_s = prefix_timing.prefix_layers(loaded, QUICK, run_overhead_s=0.0, end_to_end_s=20e-6)
    assert set(layers) == {n.name for n in loaded.graph.layers}
    assert all(s.median >= 0 for s in layers.values())
    # Telescoping: the differences of the fitted prefixes sum to the last one (the model) less the
    # run overhead timed in the same rounds.
    assert 0 < run_s < whole.median
    assert sum(s.median for s in layers.values()) == pytest.approx(whole.median - run_s, rel=1e-9)
    assert prefix_timing.wanted(profiler_slowdown=3.5, layers=10)
    assert not prefix_timing.wanted(profiler_slowdown=1.2, layers=38)
    assert not prefix_timing.wanted(profiler_slowdown=3.5, layers=prefix_timing.MAX_LAYERS + 1)


def test_paired_medians_follow_the_reference_round_by_round():
    # The host at two speeds in turn; the part takes half the whole model's time in every round but
    # the last, where it stalled. Its own median (0.6) mixes the two speeds; paired, it is half the
    # whole model's median.
    whole = [1.0, 1.4, 1.0, 1.4, 1.4]
    part = [0.5, 0.7, 0.5, 0.6, 3.0]
    assert paired_medians([part, whole], whole) == pytest.approx([0.5 * 1.4, 1.4])
    assert paired_medians([[0.5, 0.5, 0.6]], [1.0, 1.0, 1.0]) == pytest.approx([0.5])


def test_prefix_medians_are_fitted_to_never_decrease():
    fitted = prefix_timing.non_decreasing([1.0, 3.0, 2.0, 4.0, 3.5, 3.5, 6.0])
    assert fitted == pytest.approx([1.0, 2.5, 2.5, 11 / 3, 11 / 3, 11 / 3, 6.0])
    # never-negative layer times that still add up to the whole (last less first)
    assert all(b >= a for a, b in zip(fitted, fitted[1:])) and fitted[-1] - fitted[0] == pytest.approx(5.0)
    assert prefix_timing.non_decreasing([1.0, 2.0]) == [1.0, 2.0]


def test_profiled_runs_count_the_last_of_each_hot_block(tmp_path):
    # A profiled session run in blocks of 3 after one warm-up block: only runs 5 and 8 count.
    trace, runs = [], 9
    for run in range(runs):
        start = run * 100
        trace.append({"name": "model_run", "ts": start, "dur": 50})
        trace.append({"cat": "Node", "name": "conv_kernel_time", "ts": start + 1, "dur": run})
    (tmp_path / "trace.json").write_text(json.dumps(trace))

    class Session:
        def end_profiling(self):
            return str(tmp_path / "trace.json")

    samples, counted = _trace_samples(Session(), warmup=1, block=3)
    assert counted == 2 and samples["conv"] == pytest.approx([5e-6, 8e-6])


def test_tiny_models_are_timed_by_prefixes_and_others_by_the_profiler():
    assert measure(graph.load(MODELS / "digits_cnn.onnx"), QUICK).mapping["method"] == "prefix differences"
    assert measure(graph.load(MODELS / "residual_cnn.onnx"), QUICK).mapping["method"] == "profiler"


def test_a_cut_through_a_fused_kernel_runs_its_layers_alone():
    cuts = CutModel({"conv": "k1", "relu": "k1", "pool": "k2"}, {"conv": 1.0, "relu": 0.5, "pool": 0.2}, {"conv"})
    assert cuts.split_groups({"relu", "pool"}) == {"relu"}
    assert cuts.split_groups({"conv", "relu", "pool"}) == set()
    # In the model the fused kernel took 0.9 (conv 0.6 + relu 0.3 by unfused weights). Cut after the
    # conv, it keeps the kernel's whole time; cut before the relu, the relu runs alone.
    fused = {"conv": 0.6, "relu": 0.3, "pool": 0.2}
    assert cuts.split_times({"conv"}, fused) == {"conv": pytest.approx(0.9)}
    assert cuts.split_times({"relu", "pool"}, fused) == {"relu": 0.5}


def test_blocked_layout_follows_the_tensors_of_the_optimised_graph():
    nchwc = "com.microsoft.nchwc"
    nodes = [helper.make_node("ReorderInput", ["x"], ["xb"], name="in", domain=nchwc),
             helper.make_node("Conv", ["xb", "w"], ["a"], name="conv_a", domain=nchwc),
             helper.make_node("Conv", ["xb", "w"], ["b"], name="conv_b", domain=nchwc),
             helper.make_node("Concat", ["a", "b"], ["c"], name="concat", axis=1),  # stays blocked
             helper.make_node("ReorderOutput", ["c"], ["cp"], name="out", domain=nchwc),
             helper.make_node("Flatten", ["cp"], ["f"], name="flatten")]
    model = helper.make_model(helper.make_graph(nodes, "g", [], []))
    assert blocked_kernels(model) == {"conv_a", "conv_b", "concat"}


def test_cut_prediction_adds_layout_changes_and_split_fusions():
    loaded = graph.load(MODELS / "residual_cnn.onnx")
    measured = measure(loaded, QUICK)
    g = loaded.graph
    names = [n.name for n in g.layers]
    members = names[1:5]  # starts inside the stem's fused conv + relu
    inputs, outputs = boundary(g, members)
    assert measured.cuts.split_groups(set(members))
    assert measured.predict_cut(g, members, inputs, outputs) > measured.predict(members)


def test_segments_are_cut_out_and_timed():
    loaded = graph.load(MODELS / "transformer_encoder.onnx")
    steps = []
    measured = measure(loaded, QUICK, segments=3, progress=steps.append)
    assert len(measured.segments) == 3
    # The units a progress bar plans: profiled rounds, the prefix stage, the parts timed (each stage
    # sized by time reports its planned share; a fraction of a unit may be left over).
    planned = rounds(loaded, QUICK, segments=3)
    assert planned == 3 * (QUICK.warmup + QUICK.repeat) + QUICK.repeat + (3 + 2 * CUT_POINTS) * QUICK.repeat
    assert planned - 2 <= sum(steps) <= planned
    calibration = measured.cut_calibration
    assert len(calibration["cut_points"]) == CUT_POINTS and calibration["factor"] > 0
    g = loaded.graph
    names = [n.name for n in g.layers]
    for segment in measured.segments:
        assert segment["measured_s"] > 0 and segment["layers"] >= 2
        members = names[names.index(segment["first"]):names.index(segment["last"]) + 1]
        # the layers' prediction, scaled by the host's drift, through the line fitted on other cuts
        layers_s = measured.predict_cut(g, members, *boundary(g, members)) * segment["drift"]
        expected = layers_s * calibration["factor"] + calibration["offset_s"]
        assert segment["predicted_s"] == pytest.approx(expected)
        measured_s = segment["measured_s"]
        assert segment["error"] == pytest.approx((segment["predicted_s"] - measured_s) / measured_s)


def test_held_out_cuts_fit_a_line_that_ignores_an_outlier():
    predicted = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    measured = [0.9 * x + 0.5 for x in predicted]
    measured[2] = 30.0  # one part timed while the host stalled
    factor, offset = line_through(predicted, measured)
    assert factor == pytest.approx(0.9) and offset == pytest.approx(0.5)
    assert line_through([2.0, 4.0], [3.0, 5.0]) == (pytest.approx(1.375), 0.0)  # two points: a factor only
    assert line_through([], []) == (1.0, 0.0)


def test_measured_and_predicted_documents_share_the_format(tmp_path):
    loaded = graph.load(MODELS / "digits_cnn.onnx")
    measured = document.measured_document(loaded, load_device("local"), QUICK, measure(loaded, QUICK))
    predicted = document.predicted_document(loaded, load_device("rpi4"), ["fp32", "int8"])
    for doc in (measured, predicted):
        assert doc["kind"] == "edgepart.profile" and doc["model"]["sha256"] == loaded.sha256
        layers = doc["precisions"]["fp32"]["layers"]
        assert set(layers) == {n.name for n in loaded.graph.layers}
        # a layer fused into another kernel may measure ~0 once the profiler's own cost is taken off
        assert all(v["calibrated_s"] >= 0 and v["energy_j"] >= 0 for v in layers.values())
        assert sum(v["calibrated_s"] for v in layers.values()) > 0
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


def test_profilers_are_built_by_name_and_report_the_rounds_they_plan():
    """Each profiler's progress units add up to its `rounds` (a stage sized by time may leave a
    fraction of a unit unreported: one per measurement at most)."""
    loaded = graph.load(MODELS / "digits_cnn.onnx")
    for name, options, measurements in (("predicted", {"device": "rpi4", "precisions": ("fp32", "int8")}, 0),
                                        ("onnxruntime", {"options": QUICK, "precisions": ("fp32", "fp16")}, 2)):
        chosen, steps = profilers.profiler(name, **options), []
        found = chosen.profile(loaded, steps.append)
        assert chosen.rounds(loaded) - measurements <= sum(steps) <= chosen.rounds(loaded)
        assert found.precisions == options["precisions"] and found.predicted == (name == "predicted")
    with pytest.raises(BadInputError, match="unknown profiler 'ort'; choose from onnxruntime, tvm, tvm-rpc"):
        profilers.profiler("ort")
    with pytest.raises(BadInputError, match=r"--check-segments 5000: must be from 0 to 1000$"):
        profilers.profiler("onnxruntime", check_segments=5000)
    with pytest.raises(BadInputError, match=r"--threads 2000: must be from 1 to 1024$"):
        profilers.profiler("predicted", threads=2000)


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


def test_calibration_recovers_the_efficiencies_that_made_the_times():
    """Layer times generated by a roofline with known efficiencies and overhead are fitted back."""
    import dataclasses

    loaded = graph.load(MODELS / "inception_cnn.onnx")
    device = load_device("local")
    truth = dataclasses.replace(device, efficiency={**device.efficiency, "conv": 0.9, "pool": 0.2},
                                layer_overhead_s=3e-6, memory_bandwidth=1e15)
    times = {n.name: {"calibrated_s": predict.node_seconds(loaded.graph, n, truth, "fp32")}
             for n in loaded.graph.layers}
    measured = document.Profile.of({"model": {"path": "x", "sha256": "0"}, "device": "local", "predicted": False,
                                    "provenance": {}, "precisions": {"fp32": {"layers": times}}})
    fitted = calibrate(dataclasses.replace(device, memory_bandwidth=1e15), loaded.graph, measured)
    assert fitted.layer_overhead_s == pytest.approx(3e-6, rel=0.05)  # tiny layers still do a little work
    assert fitted.efficiency["conv"] == pytest.approx(0.9, rel=0.02)
    assert fitted.efficiency["pool"] == pytest.approx(0.2, rel=0.02)


def test_rapl_meter_reads_and_handles_wraparound(tmp_path):
    from edgepart.profile import energy

    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("1000000\n")
    (zone / "energy_uj").write_text("900000\n")
    (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-zone: not counted twice
    meter = energy.RaplMeter(tmp_path)
    (zone / "energy_uj").write_text("100000\n")  # wrapped: 0.1 J + 0.1 J
    assert meter.read_j() == pytest.approx(0.2)
    assert "package-0" in meter.description


def test_energy_window_is_at_least_the_minimum():
    from edgepart.profile import energy

    class Counter:
        description = "fake"
        joules = 0.0

        def read_j(self):
            return self.joules

    meter = Counter()

    def run():
        meter.joules += 0.5

    reading = energy.measure(run, meter, min_window_s=0.05)
    assert reading.window_s >= 0.05 and reading.joules_per_run == pytest.approx(0.5)
    assert reading.method == "measured: fake"


def test_prediction_calibrated_on_another_model_lands_within_25_percent():
    """This host's device profile calibrated on the inception CNN predicts the residual CNN end to
    end. The residual CNN is timed round-robin with the inception one, and the prediction scaled by
    how far the inception CNN's time drifted since it was profiled: a shared host changing speed
    between the two is not a prediction error. (bench/bench_calibration.py measures every pair.)"""
    device, options = load_device("local"), RunOptions(threads=1, warmup=10, repeat=50)
    source, target = graph.load(MODELS / "inception_cnn.onnx"), graph.load(MODELS / "residual_cnn.onnx")
    measured = measure(source, options)
    fitted = calibrate(device, source.graph,
                       document.Profile.of(document.measured_document(source, device, options, measured)))
    predicted = predict.end_to_end(target.graph, fitted, "fp32") + measured.overheads.run_s
    now_source, now_target = time_interleaved([(named_model(m), sample_inputs(m)) for m in (source, target)], options)
    drift = now_source.median / measured.end_to_end.median
    assert abs(predicted * drift / now_target.median - 1) <= 0.25


def test_tvm_layer_times_add_up_to_the_artifact_even_when_some_kernels_name_no_layer():
    """A kernel of a node onnxruntime's folding renamed belongs to no layer: its time is spread over
    the layers (by the scale), not lost from the price."""
    from edgepart.profile.tvm_profiler import per_layer  # noqa: PLC0415

    loaded = graph.load(MODELS / "digits_cnn.onnx")
    kernels = {node.name: [1e-4] for node in loaded.graph.layers}
    kernels["renamed_by_folding"] = [5e-4] * 3
    layers, scale = per_layer(loaded, kernels, Stats.of([2e-3]))
    assert sum(s.median for s in layers.values()) == pytest.approx(2e-3)
    assert scale == pytest.approx(2e-3 / (1e-4 * len(loaded.graph.layers)))
