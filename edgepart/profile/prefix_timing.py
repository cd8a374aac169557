"""Per-layer times from differences of prefixes, for models whose kernels are too short for the profiler.

onnxruntime's profiler counts whole microseconds and adds a few microseconds of its own to every
kernel; on a model of a handful of 5 us kernels that is as large as the work itself, and no
correction for it holds to 10%. There, the layers are timed without the profiler: the model cut
after each layer (in topological order) is a plain session, all of them run round-robin so each
round sees one machine state, and a layer costs its prefix's time less the previous prefix's (the
first layer: less a session that does next to nothing, timed in the same rounds: the per-run
overhead, which measured apart moved from 6.5 to 9.7 us between two runs on the digits CNN, a
fifth of the model). A prefix's median is taken paired with the whole model (paired_medians), and
a layer's median is the difference of the prefixes' medians, fitted to never decrease
(non_decreasing); the differences add up to the whole model less that overhead, and each includes
what fusion and layout changes at that point save or cost.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from edgepart.graph import LoadedModel
from edgepart.graph.extract import boundary, extract
from edgepart.graph.sessions import named_model
from edgepart.profile.measure_timing import paired_medians, scaled_progress, time_rounds
from edgepart.profile.ort_profiler import HOT_RUNS, RunOptions, Stats, rounds_within, sample_inputs
from edgepart.profile.overhead import smallest_run

# Use prefixes when the profiled session runs this much slower than the plain one, timed in the
# same rounds (measured here: CNNs of 0.1-2 ms 1.11-1.24, the transformer 1.98, the digits CNN 3.5;
# the profiler's cost per kernel, measured apart, over the model's time flipped the transformer to
# the profiler when the host slowed down between the two, and its layers then summed to +17%)...
PROFILER_SLOWDOWN_LIMIT = 1.5
# ...and the model is small enough that timing a prefix per layer stays cheap.
MAX_LAYERS = 200
# A difference of two runs is noisier than one run: MIN_ROUNDS rounds, but at least MIN_SECONDS
# and at most MAX_SECONDS of them (a round runs every prefix HOT_RUNS times: quadratic in the
# layers), never fewer than --repeat. A shared host's speed wanders over tenths of a second: 200
# rounds of the 16 us digits CNN spanned 60 ms, and its segments were off by over 5% in 3 runs of 8
# (0 of 8 with rounds spanning 2 s).
MIN_ROUNDS = 200
MIN_SECONDS = 2.0
MAX_SECONDS = 10.0


def wanted(profiler_slowdown: float, layers: int) -> bool:
    return layers <= MAX_LAYERS and profiler_slowdown > PROFILER_SLOWDOWN_LIMIT


def prefix_layers(loaded: LoadedModel, options: RunOptions, run_overhead_s: float, end_to_end_s: float,
                  progress: Callable[[int], None] = lambda n: None) -> tuple[dict[str, Stats], Stats, float]:
    """Per-layer Stats from prefix differences, the whole model's wall clock and the per-run overhead,
    all from the same rounds (`run_overhead_s` and `end_to_end_s`, as measured before, size them;
    `progress` is told `options.repeat` steps in all)."""
    graph = loaded.graph
    model, feeds = named_model(loaded), sample_inputs(loaded)
    layers = list(graph.layers)
    runs = [smallest_run()]
    for count in range(1, len(layers) + 1):
        inputs, outputs = boundary(graph, [n.name for n in layers[:count]])
        runs.append((extract(model, graph, inputs, outputs), {t: feeds[t] for t in inputs}))
    round_s = HOT_RUNS * len(layers) * (run_overhead_s + end_to_end_s) / 2  # prefixes average half the model
    rounds = max(options.repeat, rounds_within(round_s, MIN_SECONDS, MIN_ROUNDS, math.ceil(MAX_SECONDS / round_s)))
    overhead, *samples = time_rounds(runs, dataclasses.replace(options, repeat=rounds),
                                     scaled_progress(progress, options.repeat / rounds))
    medians = paired_medians([overhead, *samples], samples[-1])
    prefix_s = non_decreasing(medians)
    # The fit moves the ends where they are pooled; scaled back, the layers add up to the measured model.
    span = prefix_s[-1] - prefix_s[0]
    scale = max(medians[-1] - medians[0], 0.0) / span if span > 0 else 0.0
    prefix_s = [medians[0] + (value - prefix_s[0]) * scale for value in prefix_s]
    previous = np.asarray(overhead)
    per_layer = {}
    for node, times, before, after in zip(layers, samples, prefix_s, prefix_s[1:]):
        current = np.asarray(times)
        spread = Stats.of(list(current - previous))
        per_layer[node.name] = Stats(after - before, spread.p10, spread.p90, spread.n)
        previous = current
    return per_layer, Stats.of(samples[-1]), medians[0]


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
