"""Per-layer times from differences of prefixes, for models whose kernels are too short for the profiler.

onnxruntime's profiler counts whole microseconds and adds a few microseconds of its own to every
kernel; on a model of a handful of 5 us kernels that is as large as the work itself, and no
correction for it holds to 10%. There, the layers are timed without the profiler: the model cut
after each layer (in topological order) is a plain session, all of them run round-robin so each
round sees one machine state, and a layer costs its prefix's time less the previous prefix's in the
same round (the first layer: less the per-run overhead). The differences add up to the whole model
less that overhead, and each includes what fusion and layout changes at that point save or cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from edgepart.graph import LoadedModel
from edgepart.graph.extract import boundary, extract
from edgepart.profile.measure_timing import time_rounds
from edgepart.profile.ort_profiler import RunOptions, Stats, named_model, sample_inputs

# Use prefixes when the profiler's own cost is over this share of the model's time...
PROFILER_SHARE_LIMIT = 0.2
# ...and the model is small enough that timing a prefix per layer stays cheap.
MAX_LAYERS = 200
# A difference of two runs is noisier than one run: at least this many rounds (cheap on such models).
MIN_ROUNDS = 200


def wanted(kernels: int, profiler_per_kernel_s: float, end_to_end_s: float, layers: int) -> bool:
    return layers <= MAX_LAYERS and kernels * profiler_per_kernel_s > PROFILER_SHARE_LIMIT * end_to_end_s


def prefix_layers(loaded: LoadedModel, options: RunOptions, run_overhead_s: float,
                  progress: Callable[[int], None] = lambda n: None) -> tuple[dict[str, Stats], Stats]:
    """Per-layer Stats from prefix differences, and the whole model's wall clock from the same rounds."""
    graph = loaded.graph
    model, feeds = named_model(loaded), sample_inputs(loaded)
    layers = list(graph.layers)
    runs = []
    for count in range(1, len(layers) + 1):
        inputs, outputs = boundary(graph, [n.name for n in layers[:count]])
        runs.append((extract(model, graph, inputs, outputs), {t: feeds[t] for t in inputs}))
    rounds = dataclasses.replace(options, repeat=max(options.repeat, MIN_ROUNDS))
    samples = time_rounds(runs, rounds, progress)
    previous = np.full(len(samples[-1]), run_overhead_s)
    per_layer = {}
    for node, times in zip(layers, samples):
        current = np.asarray(times)
        differences = Stats.of(list(current - previous))
        per_layer[node.name] = Stats(max(differences.median, 0.0), differences.p10, differences.p90, differences.n)
        previous = current
    return per_layer, Stats.of(samples[-1])
