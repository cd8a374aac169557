"""CostModel: what every choice costs, and the exact cost of a whole assignment.

Tiers are ordered (0 = the device). A node runs on one tier in one precision. Data only flows up
the tiers along the graph's edges, except into the model's outputs, which are consumed on the
output tier (results may come back down). A tensor crossing link l (between tiers l and l + 1)
is paid once per link, whatever the number of its consumers above it, in the codec chosen for
that hop. A link used at all costs its per-inference overhead (one round trip; radio tail).

Latency is the sequential sum (one inference at a time); energy is the device tier's energy per
inference: its own computation, its radio, and its idle power while it waits for the others.
Throughput (pipelined) is the slowest stage: a tier's compute or a link's transfers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INFEASIBLE = np.inf


@dataclass(frozen=True)
class TensorCosts:
    """A tensor as the solvers see it: producer, consumers (node indices), bytes per codec."""

    name: str
    producer: int
    consumers: tuple[int, ...]
    is_output: bool  # consumed (also) on the output tier


@dataclass(frozen=True)
class Objective:
    """What to minimise: latency, energy, latency + weight x energy (weight in s/J), or throughput."""

    kind: str = "latency"  # latency | energy | weighted | throughput
    weight: float = 0.0

    @property
    def coefficients(self) -> tuple[float, float]:
        """(a, b) so that the additive objective is a x latency + b x energy."""
        return {"latency": (1.0, 0.0), "energy": (0.0, 1.0), "weighted": (1.0, self.weight),
                "throughput": (1.0, 0.0)}[self.kind]

    def describe(self) -> str:
        return f"weighted (latency + {self.weight:g} s/J x energy)" if self.kind == "weighted" else self.kind


@dataclass
class CostModel:
    """Array shapes: N nodes, K tiers, P precisions, T tensors, L = K - 1 links, C codecs.
    Units: seconds, joules, bytes; np.inf marks a choice that is not allowed."""

    tiers: tuple[str, ...]
    links: tuple[str, ...]
    precisions: tuple[str, ...]
    codecs: tuple[str, ...]
    nodes: tuple[str, ...]
    node_latency: np.ndarray  # [N, K, P]
    node_energy: np.ndarray  # [N, K, P]
    weight_bytes: np.ndarray  # [N, P]
    activation_bytes: np.ndarray  # [N]
    accuracy_drop: np.ndarray  # [N, P]
    tensors: tuple[TensorCosts, ...]
    transfer_latency: np.ndarray  # [T, L, C] up one link
    transfer_energy: np.ndarray  # [T, L, C]
    codec_accuracy_drop: np.ndarray  # [T, C] per link crossed
    return_latency: np.ndarray  # [T, L] an output coming down one link
    return_energy: np.ndarray  # [T, L]
    link_latency: np.ndarray  # [L] per inference that uses the link
    link_energy: np.ndarray  # [L]
    pinned: dict[int, int]  # node -> tier
    unordered: frozenset[int]  # nodes exempt from the flow-up rule (output pseudo-nodes)
    output_tier: int = 0
    memory_budget: tuple[float | None, ...] = ()
    latency_budget: float | None = None
    energy_budget: float | None = None
    accuracy_budget: float | None = None
    wire_bytes: np.ndarray | None = None  # [T, C] bytes on the wire, for plan files (None: not known)
    backends: tuple[str, ...] = ()  # [K] the backend each tier's node costs are for

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        n, k, p = self.node_latency.shape
        return n, k, p, len(self.tensors), len(self.codecs)

    def ordered_edges(self) -> list[tuple[int, int]]:
        """(u, v) pairs whose tiers must satisfy tier[u] <= tier[v]."""
        return sorted({(t.producer, c) for t in self.tensors for c in t.consumers if c not in self.unordered})

    def combined(self, objective: Objective) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Additive objective per item: node [N,K,P], transfer [T,L,C], return [T,L], link [L]."""
        a, b = objective.coefficients

        def mix(latency: np.ndarray, energy: np.ndarray) -> np.ndarray:
            with np.errstate(invalid="ignore"):
                out = a * latency + b * energy
            return np.where(np.isinf(latency) | np.isinf(energy), np.inf, out)

        return (mix(self.node_latency, self.node_energy), mix(self.transfer_latency, self.transfer_energy),
                mix(self.return_latency, self.return_energy), mix(self.link_latency, self.link_energy))


@dataclass(frozen=True)
class Metrics:
    """Exact figures of assignments, one entry per assignment (arrays of length M)."""

    latency_s: np.ndarray
    energy_j: np.ndarray
    accuracy_drop: np.ndarray
    memory_bytes: np.ndarray  # [M, K]
    stage_s: np.ndarray  # [M, K + L]: each tier's compute, then each link's transfers
    ordered: np.ndarray  # [M] bool: data only flows up, pins hold

    @property
    def throughput_s(self) -> np.ndarray:
        """Seconds per inference when pipelined: the slowest stage."""
        return self.stage_s.max(axis=1)

    def objective(self, objective: Objective) -> np.ndarray:
        if objective.kind == "throughput":
            return self.throughput_s
        a, b = objective.coefficients
        return a * self.latency_s + (b * self.energy_j if b else 0.0)

    def feasible(self, model: CostModel) -> np.ndarray:
        """Ordered, finite, and within every budget of the model."""
        ok = self.ordered & np.isfinite(self.latency_s) & np.isfinite(self.energy_j)
        eps = 1e-12
        if model.latency_budget is not None:
            ok &= self.latency_s <= model.latency_budget * (1 + eps)
        if model.energy_budget is not None:
            ok &= self.energy_j <= model.energy_budget * (1 + eps)
        if model.accuracy_budget is not None:
            ok &= self.accuracy_drop <= model.accuracy_budget + eps
        for k, budget in enumerate(model.memory_budget):
            if budget is not None:
                ok &= self.memory_bytes[:, k] <= budget
        return ok


def evaluate(model: CostModel, tiers: np.ndarray, precisions: np.ndarray, codecs: np.ndarray) -> Metrics:
    """Metrics of M assignments: tiers and precisions [M, N] (indices), codecs [M, T, L]."""
    tiers, precisions = np.atleast_2d(tiers), np.atleast_2d(precisions)
    codecs = codecs.reshape(tiers.shape[0], len(model.tensors), len(model.links))
    m, n = tiers.shape
    k_count, l_count = len(model.tiers), len(model.links)
    rows = np.arange(n)[None, :]
    latency_nodes = model.node_latency[rows, tiers, precisions]  # [M, N]
    energy = model.node_energy[rows, tiers, precisions].sum(axis=1)
    latency = latency_nodes.sum(axis=1)
    accuracy = model.accuracy_drop[rows, precisions].sum(axis=1)
    stage = np.zeros((m, k_count + l_count))
    memory = np.zeros((m, k_count))
    for k in range(k_count):
        on_tier = tiers == k
        stage[:, k] = np.where(on_tier, latency_nodes, 0.0).sum(axis=1)
        weights = np.where(on_tier, model.weight_bytes[rows, precisions], 0.0).sum(axis=1)
        memory[:, k] = weights + np.where(on_tier, model.activation_bytes[None, :], 0.0).max(axis=1)
    for t, tensor in enumerate(model.tensors):
        source = tiers[:, tensor.producer]
        reach = tiers[:, list(tensor.consumers)].max(axis=1) if tensor.consumers else source
        for link in range(l_count):
            up = (source <= link) & (link < reach)
            chosen = codecs[:, t, link]
            up_latency = np.where(up, model.transfer_latency[t, link, chosen], 0.0)
            latency += up_latency
            energy += np.where(up, model.transfer_energy[t, link, chosen], 0.0)
            accuracy += np.where(up, model.codec_accuracy_drop[t, chosen], 0.0)
            down = tensor.is_output & (model.output_tier <= link) & (link < source)
            down_latency = np.where(down, model.return_latency[t, link], 0.0)
            latency += down_latency
            energy += np.where(down, model.return_energy[t, link], 0.0)
            stage[:, k_count + link] += up_latency + down_latency
    highest = tiers.max(axis=1)
    for link in range(l_count):
        used = highest > link
        latency += np.where(used, model.link_latency[link], 0.0)
        energy += np.where(used, model.link_energy[link], 0.0)
    ordered = np.ones(m, dtype=bool)
    for u, v in model.ordered_edges():
        ordered &= tiers[:, u] <= tiers[:, v]
    for node, tier in model.pinned.items():
        ordered &= tiers[:, node] == tier
    return Metrics(latency, energy, accuracy, memory, stage, ordered)
