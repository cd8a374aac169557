"""Cut fuzzing on the bundled models (bench/bench_cuts.py runs the zoo): random valid cuts, each
tier cut as compile cuts it, compiled with TVM and held to onnxruntime on the same sub-model."""

from __future__ import annotations

import numpy as np
import pytest

from bench import bench_cuts
from edgepart import graph
from tests.conftest import EXAMPLE_MODELS


@pytest.mark.parametrize("path", EXAMPLE_MODELS, ids=lambda p: p.stem)
def test_drawn_cuts_are_valid(path):
    """Every tier holds a layer and no tensor flows down the tiers, over many seeds."""
    loaded = graph.load(path)
    layer_graph = loaded.graph
    for seed in range(20):
        rng = np.random.default_rng(seed)
        tiers = 2 + seed % 2
        placement = bench_cuts.draw(layer_graph, tiers, rng)
        order = [t.name for t in placement.tiers]
        level = {layer.name: order.index(placement.tier_of(layer.name)) for layer in layer_graph.layers}
        assert set(level.values()) == set(range(tiers))
        for layer in layer_graph.layers:
            for tensor in layer.inputs:
                producer = layer_graph.tensors[tensor].producer
                assert level.get(producer, 0) <= level[layer.name]


@pytest.mark.slow
@pytest.mark.tvm
@pytest.mark.parametrize("path", EXAMPLE_MODELS, ids=lambda p: p.stem)
def test_random_cuts_compile_and_match_onnxruntime(path, tmp_path):
    loaded = graph.load(path)
    for index in range(2):
        rng = np.random.default_rng([7, index])
        placement = bench_cuts.draw(loaded.graph, 2 + index, rng)
        record = bench_cuts.check_cut(loaded, path, placement, ["x86-64"], False, tmp_path / str(index))
        outcomes = [bench_cuts.outcome(tier) for tier in record["targets"]["x86-64"]]
        assert outcomes == ["matched"] * len(record["tiers"]), record
