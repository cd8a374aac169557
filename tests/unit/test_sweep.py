"""The sweep's plan table against re-solving from scratch at random bandwidths."""

import dataclasses

import numpy as np
import pytest

from edgepart import graph
from edgepart.cost import build as cost_build
from edgepart.cost.model import Objective
from edgepart.hardware import deploy
from edgepart.plan import brute, envelope, mincut, sweep
from tests.conftest import MODELS, REPO
from tests.synthetic_costs import random_model


def _scaled(model, beta):
    """The synthetic model with link 0's transfers proportional to beta = 1 / bandwidth."""
    latency, energy = model.transfer_latency.copy(), model.transfer_energy.copy()
    latency[:, 0, :] *= beta
    energy[:, 0, :] *= beta
    return dataclasses.replace(model, transfer_latency=latency, transfer_energy=energy)


@pytest.mark.parametrize("seed", range(6))
def test_sweep_matches_brute_force_at_50_bandwidths(seed):
    model = random_model(6, tiers=2 + seed % 2, precisions=2, codecs=2, seed=seed)
    family = envelope.AffineFamily(_scaled(model, 1e-3), 1e-3, _scaled(model, 1e3), 1e3)
    objective = Objective("latency" if seed % 2 else "energy")
    segments = envelope.bandwidth_sweep(family, objective, mincut.solve, 1e-3, 1e3)
    assert segments[0].start == pytest.approx(1e-3) and segments[-1].end == pytest.approx(1e3)
    rng = np.random.default_rng(seed)
    for bandwidth in np.exp(rng.uniform(np.log(1e-3), np.log(1e3), 50)):
        model_here = family.at(1 / bandwidth)
        plan = next(s for s in segments if s.start <= bandwidth <= s.end).solution
        expected = brute.solve(model_here, objective).objective(model_here, objective)
        assert plan.objective(model_here, objective) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_sweep_of_a_real_model_matches_resolving_at_50_bandwidths():
    loaded = graph.load(MODELS / "inception_cnn.onnx")
    deployment = deploy.load(REPO / "examples" / "board-server.toml")
    fast_lan = dataclasses.replace(deployment.links[0], uplink_bps=1e6, rtt_s=0.5e-3)
    deployment = dataclasses.replace(deployment, links=(fast_lan,))
    doc = sweep.sweep_document(loaded, deployment, 0, 1e6, 1e10, Objective("latency"), "mincut")
    assert len(doc["segments"]) >= 2  # the example really changes plan over this range
    rng = np.random.default_rng(0)
    for bandwidth in np.exp(rng.uniform(np.log(1e6), np.log(1e10), 50)):
        cost = cost_build.build(loaded.graph, sweep.at_bandwidth(deployment, 0, bandwidth))
        segment = next(s for s in doc["segments"] if s["from_bps"] <= bandwidth <= s["to_bps"])
        tiers = np.array([cost.tiers.index(segment["assignment"][n]) for n in cost.nodes])
        fresh = mincut.solve(cost, Objective("latency"))
        table = dataclasses.replace(fresh, tiers=tiers,
                                    precisions=np.zeros_like(tiers))
        assert table.objective(cost, Objective("latency")) == pytest.approx(
            fresh.objective(cost, Objective("latency")), rel=1e-9)


def test_sweep_counts_layers_as_plan_does():
    """Layers per tier count real layers only (chain_cnn's 15), not the graph's input and output nodes."""
    loaded = graph.load(MODELS / "chain_cnn.onnx")
    deployment = deploy.load(REPO / "examples" / "board-server.toml")
    doc = sweep.sweep_document(loaded, deployment, 0, 1e6, 1e10, Objective("latency"), "mincut")
    layers = len(loaded.graph.layers)
    for row in doc["segments"] + doc["pareto"]:
        assert sum(row["layers_per_tier"].values()) == layers, row["layers_per_tier"]
