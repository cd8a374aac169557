"""Every solver against brute force on seeded random DAGs (STYLE.md 13)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from edgepart.cost.model import CostModel, Objective, TensorCosts
from edgepart.errors import CheckFailedError
from edgepart.plan import brute, chain, ilp, mincut
from tests.synthetic_costs import random_model

LATENCY, ENERGY, WEIGHTED = Objective("latency"), Objective("energy"), Objective("weighted", 0.7)


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


@pytest.mark.parametrize("seed", range(200))
def test_mincut_equals_brute_force(seed):
    tiers = 2 + seed % 2
    model = random_model(4 + seed % 9, tiers=tiers, seed=seed, output_tier=(seed // 4) % tiers if seed % 3 == 0 else 0)
    best = brute.solve(model, LATENCY).objective(model, LATENCY)
    assert close(mincut.solve(model, LATENCY).objective(model, LATENCY), best)
    assert chain.solve(model, LATENCY).objective(model, LATENCY) >= best - 1e-12


@pytest.mark.parametrize("seed", range(200))
def test_mincut_with_precisions_and_codecs_equals_brute_force(seed):
    model = random_model(4 + seed % 4, tiers=2 + seed % 2, precisions=2 + seed % 2, codecs=2, seed=1000 + seed)
    objective = (LATENCY, ENERGY, WEIGHTED)[seed % 3]
    expected = brute.solve(model, objective).objective(model, objective)
    assert close(mincut.solve(model, objective).objective(model, objective), expected)


def _budgeted(model: CostModel, seed: int) -> CostModel:
    """A latency budget halfway between the fastest plan and the most frugal one; sometimes accuracy."""
    fast = mincut.solve(model, LATENCY).metrics(model).latency_s[0]
    frugal = mincut.solve(model, ENERGY).metrics(model).latency_s[0]
    return dataclasses.replace(model, latency_budget=float(fast + frugal) / 2,
                               accuracy_budget=0.015 if seed % 2 else None)


@pytest.mark.parametrize("seed", range(200))
def test_ilp_with_budgets_equals_brute_force(seed):
    model = _budgeted(random_model(4 + seed % 5, tiers=2 + seed % 2, precisions=1 + seed % 3, seed=2000 + seed), seed)
    for objective in ((ENERGY, Objective("throughput"), LATENCY)[seed % 3],):
        try:
            expected = brute.solve(model, objective).objective(model, objective)
        except CheckFailedError:
            with pytest.raises(CheckFailedError):
                ilp.solve(model, objective)
            continue
        solution = ilp.solve(model, objective)
        assert solution.metrics(model).feasible(model)[0]
        assert abs(solution.objective(model, objective) - expected) <= 1e-6 * max(1.0, expected)


@pytest.mark.parametrize("seed", range(20))
def test_ilp_chooses_codecs_under_an_accuracy_budget_like_brute_force(seed):
    model = random_model(4 + seed % 2, tiers=2, precisions=2, codecs=2, seed=3000 + seed)
    model = dataclasses.replace(model, accuracy_budget=0.01)
    expected = brute.solve(model, LATENCY, enumerate_codecs=True).objective(model, LATENCY)
    assert abs(ilp.solve(model, LATENCY).objective(model, LATENCY) - expected) <= 1e-6 * max(1.0, expected)


@pytest.mark.parametrize("seed", range(200))
def test_chain_is_the_best_single_split(seed):
    model = random_model(5 + seed % 6, tiers=2 + seed % 2, seed=4000 + seed)
    n, k = len(model.nodes), len(model.tiers)
    order = [v for v in range(n) if v not in model.unordered]
    best = np.inf
    for splits in itertools.combinations_with_replacement(range(1, len(order) + 1), k - 1):
        tiers = np.zeros(n, dtype=int)
        for tier, start in enumerate(splits, 1):
            tiers[order[start:]] = tier
        tiers[list(model.unordered)] = model.output_tier
        metrics = brute.evaluate(model, tiers[None], np.zeros((1, n), dtype=int),
                                 np.zeros((1, len(model.tensors), k - 1), dtype=int))
        if metrics.ordered[0]:
            best = min(best, float(metrics.latency_s[0]))
    assert close(chain.solve(model, LATENCY).objective(model, LATENCY), best)


def test_single_split_is_strictly_worse_than_mincut_on_a_branching_dag():
    """in -> a -> heavy -> join and in -> wide -> narrow -> join. The best plan sends `heavy` up but
    keeps the input and the wide tensor on the device; in the order [in, a, heavy, wide, narrow,
    join, out] no prefix does that."""
    names = ["in", "a", "heavy", "wide", "narrow", "join", "out"]
    n = len(names)
    latency = np.zeros((n, 2, 1))
    latency[:, 0, 0] = [0, 0.1, 10.0, 0.1, 0.1, 0.1, 0]  # device
    latency[:, 1, 0] = [0, 0.01, 1.0, 0.01, 0.01, 0.01, 0]  # server, 10x faster
    edges = {"in": [1, 3], "a": [2], "heavy": [5], "wide": [4], "narrow": [5], "join": [6]}
    size = {"in": 1.0, "a": 0.1, "heavy": 0.1, "wide": 50.0, "narrow": 0.1, "join": 0.1}
    tensors = tuple(TensorCosts(name, names.index(name), tuple(c), is_output=name == "join")
                    for name, c in edges.items())
    t = len(tensors)
    model = CostModel(
        tiers=("device", "server"), links=("uplink",), precisions=("fp32",), codecs=("raw",), nodes=tuple(names),
        node_latency=latency, node_energy=latency.copy(), weight_bytes=np.zeros((n, 1)),
        activation_bytes=np.zeros(n), accuracy_drop=np.zeros((n, 1)), tensors=tensors,
        transfer_latency=np.array([[[size[x.name]]] for x in tensors]), transfer_energy=np.zeros((t, 1, 1)),
        codec_accuracy_drop=np.zeros((t, 1)), return_latency=np.full((t, 1), 0.05), return_energy=np.zeros((t, 1)),
        link_latency=np.array([0.2]), link_energy=np.zeros(1), pinned={0: 0, 6: 0}, unordered=frozenset({6}),
        memory_budget=(None, None),
    )
    best_cut = mincut.solve(model, LATENCY)
    best_split = chain.solve(model, LATENCY)
    assert list(best_cut.tiers) == [0, 0, 1, 0, 0, 1, 0], (best_cut.tiers, best_split.tiers)
    assert best_split.objective(model, LATENCY) > best_cut.objective(model, LATENCY) + 0.5
    assert close(best_cut.objective(model, LATENCY), brute.solve(model, LATENCY).objective(model, LATENCY))


@pytest.mark.parametrize("nodes, seed", [(200, 1), (350, 2), (500, 3)])
def test_layered_mincut_equals_ilp_on_large_dags(nodes, seed):
    model = random_model(nodes, tiers=3, seed=seed)
    cut = mincut.solve(model, LATENCY).objective(model, LATENCY)
    optimum = ilp.solve(model, LATENCY, ilp.IlpOptions(warm_start=False))
    assert optimum.status == "optimal"
    assert abs(cut - optimum.objective(model, LATENCY)) <= 1e-6 * cut


def test_pins_are_respected_and_contradictions_named():
    model = random_model(9, tiers=3, seed=7)
    pinned = dataclasses.replace(model, pinned={**model.pinned, 2: 1, 6: 2})
    for solver in (mincut, chain, brute):
        solution = solver.solve(pinned, LATENCY)
        assert solution.tiers[2] == 1 and solution.tiers[6] == 2
    contradictory = dataclasses.replace(model, pinned={**model.pinned, 4: 2, 5: 0})  # n4 feeds n5
    for solver in (mincut, chain, ilp):
        with pytest.raises(CheckFailedError, match="pins contradict: 'n4' is pinned to tier 'tier2'"):
            solver.solve(contradictory, LATENCY)


def test_unmet_budgets_name_each_budget_with_the_best_value_reachable():
    for seed in range(50):
        model = random_model(7, tiers=2, seed=3000 + seed)
        fast, frugal = mincut.solve(model, LATENCY).metrics(model), mincut.solve(model, ENERGY).metrics(model)
        if fast.energy_j[0] > frugal.energy_j[0] * 1.01 and frugal.latency_s[0] > fast.latency_s[0] * 1.01:
            break
    else:
        pytest.fail("no random model with a latency-energy trade-off")
    alone = dataclasses.replace(model, latency_budget=float(fast.latency_s[0]) / 2)
    assert ilp.unmet_budgets(alone) == {"latency_s": {"limit": float(fast.latency_s[0]) / 2,
                                                      "best_reachable": pytest.approx(float(fast.latency_s[0]))}}
    together = dataclasses.replace(model, latency_budget=float(fast.latency_s[0]),
                                   energy_budget=float(frugal.energy_j[0]))
    assert ilp.unmet_budgets(together) == {}
    assert "cannot be met together" in ilp.infeasible_message(together)
