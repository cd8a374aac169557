"""Measure this host with onnxruntime: per-layer times, end-to-end time, and the fidelity of
summing layer times over random contiguous segments (sub-models cut out and timed alone)."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

from edgepart.compress import data
from edgepart.graph import LayerGraph, LoadedModel
from edgepart.graph.extract import boundary, extract
from edgepart.profile import energy, prefix_timing
from edgepart.profile.energy import EnergyReading
from edgepart.profile.measure_timing import time_interleaved
from edgepart.profile.ort_profiler import (
    CutModel,
    RunOptions,
    Stats,
    named_model,
    profile_layers,
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
    cut_costs: dict | None = None  # measured "entry"/"exit" seconds of a cut, and where (measure_cut_costs)

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
        cost of returning the outputs."""
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
        costs = self.cut_costs or {}
        entered = costs.get("entry", 0.0) if any(t not in graph.inputs for t in inputs) else 0.0
        left = costs.get("exit", 0.0) if any(t not in graph.outputs for t in outputs) else 0.0
        return self.calibration * work + self.overheads.run_s + reorder + returned + entered + left


def measure(loaded: LoadedModel, options: RunOptions, segments: int = 0, seed: int = 0,
            progress: Callable[[int], None] = lambda n: None) -> Measurement:
    overheads = measure_overheads(options)
    passes = profile_layers(loaded, options, progress, overheads.profiler_per_kernel_s)
    layers, end_to_end, mapping = passes.layers, passes.end_to_end, {**passes.mapping, "method": "profiler"}
    if prefix_timing.wanted(passes.mapping["kernels"], overheads.profiler_per_kernel_s, end_to_end.median,
                            len(loaded.graph.layers)):
        layers, end_to_end = prefix_timing.prefix_layers(loaded, options, overheads.run_s, progress)
        mapping["method"] = "prefix differences"
    model = named_model(loaded)
    feeds = sample_inputs(loaded)
    result = Measurement(layers, end_to_end, passes.end_to_end_cpu, overheads, mapping, [], passes.cuts)
    if segments:
        values = _all_tensors(model, loaded, feeds)
        result.cut_costs = measure_cut_costs(loaded, model, feeds, values, result, options, seed + 1, progress)
        result.segments = check_segments(loaded, model, feeds, values, result, options, segments, seed, progress)
    return result


CUT_POINTS = 4


def measure_cut_costs(loaded: LoadedModel, model: onnx.ModelProto, feeds: dict, values: dict,
                      measured: Measurement, options: RunOptions, seed: int,
                      progress: Callable[[int], None]) -> dict:
    """What a cut costs beyond what the layer times and the modelled boundary terms predict, as
    measured on this model: at CUT_POINTS random cuts, the part after the cut ("entry": its inputs
    come from outside, cold) and the part before it ("exit") are timed round-robin with the whole
    model; the medians of measured less predicted seconds. (The transformer here: every part after
    a cut ran 13-23 us slower than its layers; the part before, within a few us.)"""
    names = [n.name for n in loaded.graph.layers]
    if len(names) < 3:
        return {"entry": 0.0, "exit": 0.0, "cut_points": []}
    points = sorted(np.random.default_rng(seed).choice(np.arange(1, len(names)), min(CUT_POINTS, len(names) - 1),
                                                        replace=False).tolist())
    residuals: dict[str, list[float]] = {"entry": [], "exit": []}
    for point in points:
        for kind, members in (("entry", names[point:]), ("exit", names[:point])):
            wall, predicted, _ = _time_cut(loaded, model, feeds, values, measured, options, members, progress)
            residuals[kind].append(wall - predicted)
    return {"entry": float(np.median(residuals["entry"])), "exit": float(np.median(residuals["exit"])),
            "cut_points": [names[p] for p in points]}


def _time_cut(loaded: LoadedModel, model: onnx.ModelProto, feeds: dict, values: dict, measured: Measurement,
              options: RunOptions, members: list[str],
              progress: Callable[[int], None]) -> tuple[float, float, float]:
    """These layers cut out as a sub-model fed real activations: its measured median seconds, timed
    round-robin with the whole model, and its predicted seconds scaled by how much the whole model's
    time drifted since the layers were profiled (so a shared host changing speed between the two
    measurements does not count as a prediction error); and that drift."""
    inputs, outputs = boundary(loaded.graph, members)
    sub = extract(model, loaded.graph, inputs, outputs)
    wall, whole = time_interleaved([(sub, {t: values[t] for t in inputs}), (model, feeds)], options, progress)
    drift = whole.median / measured.end_to_end.median
    return wall.median, measured.predict_cut(loaded.graph, members, inputs, outputs) * drift, drift


def check_segments(loaded: LoadedModel, model: onnx.ModelProto, feeds: dict, values: dict, measured: Measurement,
                   options: RunOptions, count: int, seed: int, progress: Callable[[int], None]) -> list[dict]:
    """Cut `count` random contiguous runs of layers out as sub-models; predicted vs measured time
    (`_time_cut`)."""
    layers = list(loaded.graph.layers)
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(count):
        length = int(rng.integers(2, len(layers) + 1)) if len(layers) > 2 else len(layers)
        start = int(rng.integers(0, len(layers) - length + 1))
        members = [n.name for n in layers[start:start + length]]
        wall, predicted, drift = _time_cut(loaded, model, feeds, values, measured, options, members, progress)
        results.append({"first": members[0], "last": members[-1], "layers": length, "predicted_s": predicted,
                        "measured_s": wall, "drift": drift, "error": (predicted - wall) / wall})
    return results


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
    session = ort.InferenceSession(named_model(loaded).SerializeToString(),
                                   session_options(options, options.optimization), providers=["CPUExecutionProvider"])
    feeds = sample_inputs(loaded)
    return energy.measure(lambda: session.run(None, feeds), meter)


def host_description() -> dict:
    return {"machine": platform.machine(), "processor": platform.processor() or _cpu_model(),
            "system": platform.system(), "python": platform.python_version()}


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
