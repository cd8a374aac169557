"""Random cost models on random DAGs, for testing solvers against brute force and for benchmarks."""

from __future__ import annotations

import numpy as np

from edgepart.cost.model import CostModel, TensorCosts


def random_model(nodes: int, tiers: int = 2, precisions: int = 1, codecs: int = 1, seed: int = 0,
                 max_parents: int = 3, output_tier: int = 0) -> CostModel:
    """A DAG of `nodes` nodes: node 0 is the input (pinned to tier 0), the last node the output
    pseudo-node (consumed on `output_tier`); each other node reads 1..max_parents earlier tensors.
    Higher tiers compute faster; lower precisions compute faster and cost accuracy; codecs
    shrink transfers and cost accuracy. Links get slower-to-faster bandwidth as they go up."""
    rng = np.random.default_rng(seed)
    n, k, p, c = nodes, tiers, precisions, codecs
    parents: list[list[int]] = [[]]
    for v in range(1, n - 1):
        count = int(rng.integers(1, min(max_parents, v) + 1))
        parents.append(sorted(set(rng.choice(v, size=count, replace=False).tolist()) | {v - 1}
                              if rng.random() < 0.5 else rng.choice(v, size=count, replace=False).tolist()))
    parents.append([n - 2])
    consumers = [[v for v in range(n) if u in parents[v]] for u in range(n)]
    speed = np.cumprod(np.concatenate([[1.0], rng.uniform(1.5, 6.0, k - 1)]))  # tier speed-ups
    base = rng.uniform(0.2, 3.0, n)
    precision_speed = np.array([1.0, 1.7, 2.8][:p])
    node_latency = base[:, None, None] / speed[None, :, None] / precision_speed[None, None, :]
    node_latency *= rng.uniform(0.8, 1.25, (n, k, p))
    node_latency[0] = 0.0
    node_latency[n - 1] = 0.0
    device_power, idle_power = rng.uniform(2.0, 5.0), rng.uniform(0.3, 1.0)
    node_energy = np.concatenate([device_power * node_latency[:, :1], idle_power * node_latency[:, 1:]], axis=1)
    tensors = tuple(TensorCosts(f"t{u}", u, tuple(consumers[u]), is_output=(n - 1) in consumers[u])
                    for u in range(n - 1) if consumers[u])
    size = rng.uniform(0.1, 4.0, len(tensors))
    link_speed = np.cumprod(rng.uniform(1.0, 4.0, max(k - 1, 0))) if k > 1 else np.ones(0)
    codec_ratio = np.array([1.0, 0.5, 0.25][:c])
    transfer_latency = size[:, None, None] / link_speed[None, :, None] * codec_ratio[None, None, :]
    transfer_latency += np.array([0.0, 0.02, 0.04][:c])[None, None, :]  # encode/decode time
    radio = np.concatenate([[rng.uniform(1.0, 3.0)], np.full(max(k - 2, 0), idle_power)])
    transfer_energy = transfer_latency * radio[None, :, None] if k > 1 else np.zeros((len(tensors), 0, c))
    return_latency = 0.3 * size[:, None] / link_speed[None, :]
    accuracy_drop = np.concatenate([np.zeros((n, 1)), rng.uniform(0.0, 0.02, (n, p - 1))], axis=1)
    accuracy_drop[[0, n - 1]] = 0.0
    return CostModel(
        tiers=tuple(f"tier{i}" for i in range(k)),
        links=tuple(f"link{i}" for i in range(k - 1)),
        precisions=("fp32", "fp16", "int8")[:p],
        codecs=("raw", "fp16", "int8")[:c],
        nodes=tuple(f"n{v}" for v in range(n)),
        node_latency=node_latency,
        node_energy=node_energy,
        weight_bytes=rng.uniform(0, 1e6, (n, 1)) * np.array([1.0, 0.5, 0.25][:p])[None, :],
        activation_bytes=rng.uniform(0, 1e5, n),
        accuracy_drop=accuracy_drop,
        tensors=tensors,
        transfer_latency=transfer_latency,
        transfer_energy=transfer_energy,
        codec_accuracy_drop=np.concatenate([np.zeros((len(tensors), 1)),
                                            rng.uniform(0.0, 0.01, (len(tensors), c - 1))], axis=1),
        return_latency=return_latency,
        return_energy=return_latency * idle_power,
        link_latency=rng.uniform(0.0, 0.3, k - 1),
        link_energy=rng.uniform(0.0, 0.5, k - 1),
        pinned={0: 0, n - 1: output_tier},
        unordered=frozenset({n - 1}),
        output_tier=output_tier,
        memory_budget=(None,) * k,
    )
