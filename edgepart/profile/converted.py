"""Measured fp16 and int8 profiles: convert the whole model the way compile would (int8 through
static QDQ, fp16 through the float16 converter), profile the converted model, and fold the time of
every node the conversion inserted (QuantizeLinear, DequantizeLinear, Cast) into the original layer
it serves: the first original layer downstream of it, else the last one upstream."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from edgepart import graph
from edgepart.compress import precision as converter
from edgepart.compress.data import Dataset
from edgepart.graph import LayerGraph, LoadedModel
from edgepart.graph.sessions import named_model
from edgepart.profile.measure import Measurement, measure
from edgepart.profile.ort_profiler import RunOptions, Stats


def measure_precision(loaded: LoadedModel, precision: str, options: RunOptions, calibration: Dataset,
                      progress: Callable[[int], None] = lambda n: None) -> Measurement:
    """Per original layer, the seconds of the model converted to `precision` (layers it cannot
    convert stay fp32 and are measured so)."""
    model = named_model(loaded)
    layers = [n.name for n in loaded.graph.layers]
    converted = converter.apply(model, dict.fromkeys(layers, precision), f"profile {precision}", calibration)
    converted_graph = graph.from_model(converted)
    as_loaded = LoadedModel(loaded.path, loaded.sha256, converted, converted_graph)
    result = measure(as_loaded, options, progress=progress)
    owner = fold(converted_graph, set(layers))
    folded: dict[str, list[Stats]] = {name: [] for name in layers}
    for name, stats in result.layers.items():
        folded[owner[name]].append(stats)
    result.layers = {name: _sum(parts) for name, parts in folded.items()}
    return result


def fold(converted: LayerGraph, originals: set[str]) -> dict[str, str]:
    """Converted layer -> the original layer it belongs to."""
    owner = {}
    for node in converted.layers:
        owner[node.name] = node.name if node.name in originals else _nearest(converted, node.name, originals)
    return owner


def _nearest(converted: LayerGraph, start: str, originals: set[str]) -> str:
    for direction in ("down", "up"):
        seen, queue = {start}, deque([start])
        while queue:
            name = queue.popleft()
            node = converted.node(name)
            if direction == "down":
                neighbours = [c for t in node.outputs for c in converted.tensors[t].consumers]
            else:
                neighbours = [converted.tensors[t].producer for t in node.inputs if t in converted.tensors]
            for other in neighbours:
                if other in originals:
                    return other
                if other not in seen and not other.startswith(("input:", "output:")):
                    seen.add(other)
                    queue.append(other)
    return sorted(originals)[0]  # a converted graph always reaches an original layer; kept total


def _sum(parts: list[Stats]) -> Stats:
    if not parts:
        return Stats(0.0, 0.0, 0.0, 0)
    return Stats(float(np.sum([p.median for p in parts])), float(np.sum([p.p10 for p in parts])),
                 float(np.sum([p.p90 for p in parts])), min(p.n for p in parts))
