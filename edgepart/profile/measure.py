"""Measure this host with onnxruntime: per-layer times, end-to-end time, and the fidelity of
summing layer times over random contiguous segments (sub-models cut out and timed alone)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from edgepart.compress import data
from edgepart.graph import LayerGraph, LoadedModel, sessions
from edgepart.graph.extract import boundary, extract
from edgepart.graph.sessions import named_model
from edgepart.profile import energy, idle, prefix_timing
from edgepart.profile.energy import EnergyReading
from edgepart.profile.measure_timing import paired_medians, scaled_progress, time_rounds
from edgepart.profile.ort_profiler import (
    HOT_RUNS,
    CutModel,
    RunOptions,
    Stats,
    profile_layers,
    rounds_within,
    sample_inputs,
    session_options,
)
from edgepart.profile.overhead import Overheads, measure_overheads


@dataclass
class Measurement:
    layers: dict[str, Stats]  # profiler times less the profiler's own per-kernel cost
    end_to_end: Stats  # wall clock, no profiler attached
    end_to_end_cpu: Stats | None  # the calling thread's CPU time (one thread only)
    overheads: Overheads
    mapping: dict
    segments: list[dict]
    cuts: CutModel | None = None
    cut_calibration: dict | None = None  # measured / predicted time of parts cut out, and where (check_segments)
    idle: dict | None = None  # a run after the runtime waited, against one back to back (profile.idle)

    @property
    def sum_of_medians(self) -> float:
        return sum(s.median for s in self.layers.values())

    @property
    def sum_error(self) -> float:
        """(sum of layer medians + per-run overhead) / measured end-to-end - 1."""
        return (self.sum_of_medians + self.overheads.run_s) / self.end_to_end.median - 1

    @property
    def calibration(self) -> float:
        """(measured end-to-end - per-run overhead) / sum of layer medians: one factor per model."""
        work = self.end_to_end.median - self.overheads.run_s
        return work / self.sum_of_medians if self.sum_of_medians and work > 0 else 1.0

    def predict(self, layers: list[str]) -> float:
        """Seconds of a session running just these layers: calibrated sum plus the per-run overhead."""
        return self.calibration * sum(self.layers[name].median for name in layers) + self.overheads.run_s

    def predict_cut(self, graph: LayerGraph, layers: list[str], inputs: list[str], outputs: list[str]) -> float:
        """Seconds of these layers cut out as a sub-model (`inputs` and `outputs` cross the cut):
        `predict`, with the layers whose fused kernel the cut splits timed as CutModel.split_times says,
        a layout change for each tensor crossing the cut in the blocked layout (CutModel), and the
        cost of returning the outputs. (check_segments scales this by a factor measured on other cuts.)"""
        if self.cuts is None:
            return self.predict(layers)
        members = set(layers)
        split = self.cuts.split_times(members, {name: stats.median for name, stats in self.layers.items()})
        work = sum(split.get(n, self.layers[n].median) for n in layers)
        blocked = self.cuts.blocked
        crossing = [t for t in inputs if graph.tensors[t].producer in blocked
                    and any(c in blocked for c in graph.tensors[t].consumers if c in members)]
        crossing += [t for t in outputs if graph.tensors[t].producer in blocked and t not in graph.outputs
                     and all(c in blocked for c in graph.tensors[t].consumers if c not in members)]
        reorder = self.overheads.reorder_s_per_byte * sum(graph.tensors[t].nbytes for t in crossing)
        returned = self.overheads.output_s_per_byte * sum(graph.tensors[t].nbytes for t in outputs)
        return self.calibration * work + self.overheads.run_s + reorder + returned


def measure(loaded: LoadedModel, options: RunOptions, segments: int = 0, seed: int = 0,
            progress: Callable[[int], None] = lambda n: None) -> Measurement:
    overheads = measure_overheads(options)
    passes = profile_layers(loaded, options, progress, overheads.profiler_probe())
    overheads = dataclasses.replace(overheads, profiler_per_kernel_s=passes.profiler_per_kernel_s)
    layers, end_to_end, mapping = passes.layers, passes.end_to_end, {**passes.mapping, "method": "profiler"}
    if prefix_timing.wanted(passes.mapping["profiler_slowdown"], len(loaded.graph.layers)):
        layers, end_to_end, run_s = prefix_timing.prefix_layers(loaded, options, overheads.run_s, end_to_end.median,
                                                                 progress)
        overheads = dataclasses.replace(overheads, run_s=run_s)
        mapping["method"] = "prefix differences"
    else:
        progress(options.repeat)  # the prefix stage's share of the progress bar, not needed
    model = named_model(loaded)
    feeds = sample_inputs(loaded)
    result = Measurement(layers, end_to_end, passes.end_to_end_cpu, overheads, mapping, [], passes.cuts)
    result.idle = idle.measure(_deployed_run(loaded, options, model, feeds))
    if segments:
        result.cut_calibration, result.segments = check_segments(loaded, model, feeds, result, options, segments, seed,
                                                           progress)
    return result


CUT_POINTS = 8  # 16 held-out parts: a line fitted to 8 was off by 20% on the digits CNN in 1 run of 5
# The check's rounds (every part and the whole model, each run hot) span at least this long, and
# number MIN_CHECK_ROUNDS to MAX_CHECK_ROUNDS, whatever --repeat: a shared host's speed wanders over
# tenths of a second, which 50 rounds of a 20 us model do not span, while 50 rounds of
# torchvision's ResNet-18 (30 ms) and its 21 parts took a minute.
MIN_CHECK_SECONDS = 3.0
MIN_CHECK_ROUNDS = 10
MAX_CHECK_ROUNDS = 2000


def cut_points(layers: int) -> int:
    """The held-out cuts check_segments times for a model of `layers` layers (two parts each)."""
    return min(CUT_POINTS, layers - 1) if layers >= 3 else 0


def rounds(loaded: LoadedModel, options: RunOptions, segments: int = 0) -> int:
    """The progress units `measure` reports: 3 per profiled round (warm-up included), `repeat` for
    the prefix stage (reported when it is skipped too), and with `segments`, `repeat` per part the
    check times (the segments and the held-out parts). A stage sized by time may leave a fraction
    of a unit unreported (scaled_progress)."""
    parts = segments + 2 * cut_points(len(loaded.graph.layers)) if segments else 0
    return 3 * (options.warmup + options.repeat) + options.repeat + parts * options.repeat


def check_segments(loaded: LoadedModel, model: onnx.ModelProto, feeds: dict, measured: Measurement,
                   options: RunOptions, count: int, seed: int,
                   progress: Callable[[int], None]) -> tuple[dict, list[dict]]:
    """Cut `count` random contiguous runs of layers out as sub-models; predicted vs measured time.

    A part cut out does not run at exactly its layers' share of the whole model: hot, its weights alone
    fill the caches (the transformer's parts ran 5-15% faster than their share), and a run of a
    small part costs what a run of the whole model does not (the digits CNN: microseconds of 16).
    So the parts before and after CUT_POINTS other random cuts are timed too, and a line fitted
    from their predicted to their measured times (line_through: a factor and an offset) corrects
    every segment's prediction: a calibration held out from the segments it is checked on. All
    parts and the whole model are timed together (_time_parts), on real activations."""
    names = [n.name for n in loaded.graph.layers]
    points = []
    if held_out_cuts := cut_points(len(names)):
        chosen = np.random.default_rng(seed + 1).choice(np.arange(1, len(names)), held_out_cuts, replace=False)
        points = sorted(chosen.tolist())
    held_out = [part for point in points for part in (names[:point], names[point:])]
    rng = np.random.default_rng(seed)
    segments = []
    for _ in range(count):
        length = int(rng.integers(2, len(names) + 1)) if len(names) > 2 else len(names)
        start = int(rng.integers(0, len(names) - length + 1))
        segments.append(names[start:start + length])
    walls, predicted, drift = _time_parts(loaded, model, feeds, measured, options, held_out + segments, progress)
    factor, offset = line_through(predicted[:len(held_out)], walls[:len(held_out)])
    calibration = {"factor": factor, "offset_s": offset, "cut_points": [names[p] for p in points]}
    results = []
    for members, wall, guess in zip(segments, walls[len(held_out):], predicted[len(held_out):]):
        guess = guess * factor + offset
        results.append({"first": members[0], "last": members[-1], "layers": len(members),
                        "predicted_s": guess, "measured_s": wall, "drift": drift,
                        "error": (guess - wall) / wall})
    return calibration, results


def line_through(predicted: list[float], measured: list[float]) -> tuple[float, float]:
    """Factor and offset taking predicted to measured seconds, robust to a few bad points
    (Theil-Sen: the median slope over pairs of points, then the median intercept for it); from
    fewer than 3 points, only a factor (the median ratio)."""
    if len(predicted) < 3:
        return (float(np.median(np.divide(measured, predicted))) if predicted else 1.0), 0.0
    slopes = [(measured[j] - measured[i]) / (predicted[j] - predicted[i])
              for i in range(len(predicted)) for j in range(i + 1, len(predicted)) if predicted[j] != predicted[i]]
    slope = float(np.median(slopes)) if slopes else 1.0
    return slope, float(np.median(np.subtract(measured, np.multiply(slope, predicted))))


def _time_parts(loaded: LoadedModel, model: onnx.ModelProto, feeds: dict, measured: Measurement,
                options: RunOptions, parts: list[list[str]],
                progress: Callable[[int], None]) -> tuple[list[float], list[float], float]:
    """These runs of layers cut out as sub-models fed real activations, timed round-robin with the
    whole model: their measured median seconds (paired_medians, against the whole model); their
    predicted seconds (predict_cut) scaled by how much the whole model's time drifted since the
    layers were profiled (so a shared host changing speed between the two measurements does not
    count as a prediction error); and that drift."""
    values = _all_tensors(model, loaded, feeds)
    runs, predicted = [(model, feeds)], []
    for members in parts:
        inputs, outputs = boundary(loaded.graph, members)
        runs.append((extract(model, loaded.graph, inputs, outputs), {t: values[t] for t in inputs}))
        predicted.append(measured.predict_cut(loaded.graph, members, inputs, outputs))
    round_s = HOT_RUNS * (measured.end_to_end.median + sum(predicted))
    rounds = rounds_within(round_s, MIN_CHECK_SECONDS, MIN_CHECK_ROUNDS, MAX_CHECK_ROUNDS)
    whole, *walls = time_rounds(runs, dataclasses.replace(options, warmup=options.warmup_for(round_s), repeat=rounds),
                                scaled_progress(progress, len(parts) * options.repeat / rounds))
    drift = float(np.median(whole)) / measured.end_to_end.median
    return paired_medians(walls, whole), [p * drift for p in predicted], drift


def _all_tensors(model: onnx.ModelProto, loaded: LoadedModel, feeds: dict) -> dict[str, np.ndarray]:
    """Every activation of one run, to feed segments with real values (shape tensors included)."""
    names = [t for t in loaded.graph.tensors if t not in loaded.graph.inputs]
    session = data.session_of(data.expose(model, names))
    return {**feeds, **dict(zip(names, session.run(names, feeds)))}


def session_energy(loaded: LoadedModel, options: RunOptions) -> EnergyReading | None:
    """RAPL package energy per run of the deployed session, where this host exposes RAPL; else None
    (the profile then models energy from the device profile)."""
    meter = energy.meter("cpu")
    if meter is None:
        return None
    return energy.measure(_deployed_run(loaded, options), meter)


def _deployed_run(loaded: LoadedModel, options: RunOptions, model: onnx.ModelProto | None = None,
                  feeds: dict | None = None) -> Callable[[], object]:
    """One run of the model as a tier deploys it (the profiled options, no profiler), warmed up."""
    session = sessions.session(model or named_model(loaded), session_options(options, options.optimization))
    feeds = feeds if feeds is not None else sample_inputs(loaded)
    for _ in range(3):
        session.run(None, feeds)
    return lambda: session.run(None, feeds)
