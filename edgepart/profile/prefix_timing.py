"""Per-layer times from differences of prefixes, for models whose kernels are too short for the profiler.

onnxruntime's profiler counts whole microseconds and adds a few microseconds of its own to every
kernel; on a model of a handful of 5 us kernels that is as large as the work itself, and no
correction for it holds to 10%. There, the layers are timed without the profiler: the model cut
after each layer (in topological order) is a plain session, all of them run round-robin so each
round sees one machine state, and a layer costs its prefix's time less the previous prefix's in the
same round (the first layer: less the per-run overhead). A layer's median is the difference of
the prefixes' medians, fitted to never decrease (non_decreasing); the differences add up to the
whole model less that overhead, and each includes what fusion and layout changes at that point save
or cost.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from edgepart.graph import LoadedModel
from edgepart.graph.extract import boundary, extract
from edgepart.profile.measure_timing import time_rounds
from edgepart.profile.ort_profiler import HOT_RUNS, RunOptions, Stats, named_model, sample_inputs

# Use prefixes when the profiler's own cost is over this share of the model's time...
PROFILER_SHARE_LIMIT = 0.2
# ...and the model is small enough that timing a prefix per layer stays cheap.
MAX_LAYERS = 200
# A difference of two runs is noisier than one run: this many rounds where they fit in
# ROUNDS_SECONDS (a round runs every prefix HOT_RUNS times: quadratic in the layers), never fewer
# than --repeat.
MIN_ROUNDS = 200
ROUNDS_SECONDS = 10.0


def wanted(kernels: int, profiler_per_kernel_s: float, end_to_end_s: float, layers: int) -> bool:
    return layers <= MAX_LAYERS and kernels * profiler_per_kernel_s > PROFILER_SHARE_LIMIT * end_to_end_s


def prefix_layers(loaded: LoadedModel, options: RunOptions, run_overhead_s: float, end_to_end_s: float,
                  progress: Callable[[int], None] = lambda n: None) -> tuple[dict[str, Stats], Stats]:
    """Per-layer Stats from prefix differences, and the whole model's wall clock from the same rounds
    (`end_to_end_s`, the model's time as measured before, sizes them)."""
    graph = loaded.graph
    model, feeds = named_model(loaded), sample_inputs(loaded)
    layers = list(graph.layers)
    runs = []
    for count in range(1, len(layers) + 1):
        inputs, outputs = boundary(graph, [n.name for n in layers[:count]])
        runs.append((extract(model, graph, inputs, outputs), {t: feeds[t] for t in inputs}))
    round_s = HOT_RUNS * len(layers) * (run_overhead_s + end_to_end_s) / 2  # prefixes average half the model
    rounds = dataclasses.replace(options, repeat=max(options.repeat,
                                                     min(MIN_ROUNDS, math.ceil(ROUNDS_SECONDS / round_s))))
    samples = time_rounds(runs, rounds, progress)
    medians = [run_overhead_s] + [float(np.median(times)) for times in samples]
    prefix_s = non_decreasing(medians)
    # The fit moves the ends where they are pooled; scaled back, the layers add up to the measured model.
    span = prefix_s[-1] - prefix_s[0]
    scale = max(medians[-1] - medians[0], 0.0) / span if span > 0 else 0.0
    prefix_s = [medians[0] + (value - prefix_s[0]) * scale for value in prefix_s]
    previous = np.full(len(samples[-1]), run_overhead_s)
    per_layer = {}
    for node, times, before, after in zip(layers, samples, prefix_s, prefix_s[1:]):
        current = np.asarray(times)
        spread = Stats.of(list(current - previous))
        per_layer[node.name] = Stats(after - before, spread.p10, spread.p90, spread.n)
        previous = current
    return per_layer, Stats.of(samples[-1])


def non_decreasing(values: list[float]) -> list[float]:
    """The closest non-decreasing sequence in least squares (pool adjacent violators).

    A layer's time is the difference of its prefix's median and the previous one's. Those medians
    can step down where a layer costs less than the noise (a Reshape); clipping each negative
    difference to zero then adds the noise up (+13% over the transformer's 73 layers), while the
    fitted prefixes give differences that are never negative and still add up to the whole model."""
    pools: list[tuple[float, int]] = []  # (mean, how many values)
    for value in values:
        mean, count = value, 1
        while pools and pools[-1][0] > mean:
            last_mean, last_count = pools.pop()
            mean, count = (last_mean * last_count + mean * count) / (last_count + count), last_count + count
        pools.append((mean, count))
    return [mean for mean, count in pools for _ in range(count)]
