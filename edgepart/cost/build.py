"""Build the CostModel of a model on a deployment: per-layer costs per tier and precision
(predicted from the device profile unless a measured profile is given), per-tensor transfer
costs per link and codec, per-link overheads, pins and budgets.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from edgepart.compress import codecs as codec_formats
from edgepart.cost.model import CostModel, TensorCosts
from edgepart.errors import BadInputError
from edgepart.graph import GRAPH_INPUT, GRAPH_OUTPUT, LayerGraph, Node, Tensor
from edgepart.hardware import backends as backend_kinds
from edgepart.hardware.deploy import PRECISIONS, Deployment, Tier
from edgepart.hardware.links import Link
from edgepart.profile import predict

# Layer seconds on a tier running a backend, in a precision; None when that was not measured.
MeasuredSeconds = Callable[[Tier, str, Node, str], float | None]
REFERENCE_BACKEND = "onnxruntime"  # what device profiles predict; other backends are a factor of it

CODEC_BYTES_PER_ELEMENT = {"raw": None, "fp16": 2, "int8": 1}
UNMEASURED_ZLIB_BPS = 50e6  # entropy coding with no measured size: assumed to gain nothing, at this speed


@dataclass(frozen=True)
class Compression:
    """What compression costs, measured on calibration data (edgepart.compress.sensitivity).

    drop: (node, precision) or ("tensor:<name>", codec) -> accuracy drop of that choice alone.
    wire_bytes: (tensor, codec) -> mean encoded bytes. codec_seconds: (tensor, codec) -> (encode,
    decode) seconds on the measuring host, whose memory bandwidth scales them to other devices.
    fp32_only: nodes that stay fp32 when asked for int8 (onnxruntime does not quantise their op).
    evidence_only: a lower precision or lossy codec the measurement does not cover (a run limited by
    `sensitivity --layers` or `--max-seconds`) is left out, as a plan without any data leaves them
    all out (edgepart.plan.evidence); False with --allow-lossy, which prices them as free."""

    drop: Mapping[tuple[str, str], float] = field(default_factory=dict)
    wire_bytes: Mapping[tuple[str, str], float] = field(default_factory=dict)
    codec_seconds: Mapping[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    host_memory_bandwidth: float | None = None
    fp32_only: frozenset[str] = frozenset()
    evidence_only: bool = False

    def unmeasured(self, key: tuple[str, str]) -> bool:
        """Whether a lossy choice ((node, precision) or ("tensor:<name>", codec)) is left out for want
        of a measurement."""
        return self.evidence_only and key not in self.drop


def build(graph: LayerGraph, deployment: Deployment, measured: MeasuredSeconds | None = None,
          compression: Compression | None = None, backends: tuple[str, ...] | None = None) -> CostModel:
    """The cost model with tier k running `backends[k]` (default: each tier's cheapest predicted
    backend, `predicted_backends`). Without `compression`, lower precisions and codecs cost no
    accuracy and are predicted."""
    compression = compression or Compression()
    backends = backends or predicted_backends(deployment)
    tiers = deployment.tiers
    precisions = tuple(p for p in PRECISIONS if any(p in t.precisions for t in tiers))
    columns = [_node_costs(graph, deployment, k, backend, precisions, measured, compression)
               for k, backend in enumerate(backends)]
    node_latency = np.stack([c[0] for c in columns], axis=1)
    node_energy = np.stack([c[1] for c in columns], axis=1)
    return _assemble(graph, deployment, precisions, node_latency, node_energy, compression, tuple(backends))


def variants(graph: LayerGraph, deployment: Deployment, measured: MeasuredSeconds | None = None,
             compression: Compression | None = None) -> list[CostModel]:
    """One cost model per combination of the tiers' candidate backends, in the deployment's order.
    A backend that costs at least as much as another of its tier on every layer and precision, in
    time and energy, can never be the better choice and is left out (with predicted costs every
    backend of a tier is the same prediction times its factor, so one remains per tier)."""
    compression = compression or Compression()
    tiers = deployment.tiers
    precisions = tuple(p for p in PRECISIONS if any(p in t.precisions for t in tiers))
    per_tier = []
    for k, tier in enumerate(tiers):
        costs = {b: _node_costs(graph, deployment, k, b, precisions, measured, compression) for b in tier.backends}
        per_tier.append({b: c for b, c in costs.items() if not _dominated(b, costs, tier.backends)})
    base = None
    models = []
    for combination in itertools.product(*(list(costs) for costs in per_tier)):
        latency = np.stack([per_tier[k][b][0] for k, b in enumerate(combination)], axis=1)
        energy = np.stack([per_tier[k][b][1] for k, b in enumerate(combination)], axis=1)
        if base is None:
            base = _assemble(graph, deployment, precisions, latency, energy, compression, combination)
            models.append(base)
        else:
            models.append(dataclasses.replace(base, node_latency=latency, node_energy=energy, backends=combination))
    return models


def predicted_backends(deployment: Deployment) -> tuple[str, ...]:
    """Per tier, the candidate with the smallest calibrated factor (the first listed on a tie): the
    cheapest wherever costs are predicted, as every backend's prediction is one prediction times its factor."""
    return tuple(min(t.backends, key=lambda b, t=t: (backend_kinds.factor(b, t.device.kind).ratio,
                                                       t.backends.index(b))) for t in deployment.tiers)


def _dominated(backend: str, costs: dict[str, tuple[np.ndarray, np.ndarray]], order: tuple[str, ...]) -> bool:
    """Another candidate is no dearer anywhere (and, when exactly as dear, listed first)."""
    latency, energy = costs[backend]
    for other, (other_latency, other_energy) in costs.items():
        if other == backend:
            continue
        no_dearer = np.all(other_latency <= latency) and np.all(other_energy <= energy)
        equal = np.array_equal(other_latency, latency) and np.array_equal(other_energy, energy)
        if no_dearer and (not equal or order.index(other) < order.index(backend)):
            return True
    return False


def _node_costs(graph: LayerGraph, deployment: Deployment, k: int, backend: str, precisions: tuple[str, ...],
                measured: MeasuredSeconds | None, compression: Compression) -> tuple[np.ndarray, np.ndarray]:
    """[N, P] seconds and device joules of every layer on tier k running `backend`: measured for that
    backend on the tier's device; else the device's onnxruntime time (measured, or predicted from
    its profile for the threads the backend runs with) times the backend's calibrated factor
    (edgepart/profiles/backends.json)."""
    tier, device = deployment.tiers[k], deployment.tiers[0].device
    ratio = backend_kinds.factor(backend, tier.device.kind).ratio
    threads = backend_kinds.threads(backend, tier.threads)
    fake_int8 = backend not in backend_kinds.INTEGER_KERNELS
    latency = np.full((len(graph.nodes), len(precisions)), np.inf)
    energy = np.full_like(latency, np.inf)

    def reference(node, precision: str) -> float:  # onnxruntime's time: measured, else predicted
        found = measured(tier, REFERENCE_BACKEND, node, precision) if measured else None
        return predict.node_seconds(graph, node, tier.device, precision, threads) if found is None else found

    for v, node in enumerate(graph.nodes):
        if not node.is_pseudo and not backend_kinds.takes(backend, node.op_type):
            continue  # the backend cannot import the operator: not a choice on this tier
        for q, precision in enumerate(precisions):
            if precision not in tier.precisions:
                continue
            if precision != "fp32" and not node.is_pseudo and compression.unmeasured((node.name, precision)):
                continue  # no evidence of what it costs in accuracy: not a choice
            if precision == "int8" and node.name in compression.fp32_only:
                continue  # onnxruntime leaves its op in fp32: the plan says fp32
            seconds = measured(tier, backend, node, precision) if measured else None
            if seconds is None:
                seconds = reference(node, precision) * ratio
                if precision == "int8" and fake_int8:  # quantize/dequantize around fp32 kernels
                    seconds = max(seconds, reference(node, "fp32") * ratio)
            latency[v, q] = seconds
            energy[v, q] = (predict.node_energy(graph, node, device, precision, seconds) if k == 0
                            else device.idle_power_w * seconds)
    return latency, energy


def _assemble(graph: LayerGraph, deployment: Deployment, precisions: tuple[str, ...], node_latency: np.ndarray,
              node_energy: np.ndarray, compression: Compression, backends: tuple[str, ...]) -> CostModel:
    tiers, links = deployment.tiers, deployment.links
    codecs = deployment.codecs
    nodes = graph.nodes
    index = {node.name: i for i, node in enumerate(nodes)}
    device = tiers[0].device
    tensor_list = list(graph.tensors.values())
    transfer_latency, transfer_energy = _transfers(tensor_list, links, codecs, tiers, compression)
    return_latency = np.array([[link.down_seconds(t.nbytes) for link in links] for t in tensor_list]).reshape(
        len(tensor_list), len(links))
    return_energy = return_latency * device.idle_power_w
    if links and links[0].radio is not None:
        return_energy[:, 0] = [links[0].radio.receive_energy(t.nbytes, links[0].downlink_bps) for t in tensor_list]
    link_latency = np.array([link.rtt_s for link in links])
    link_energy = link_latency * device.idle_power_w
    if links and links[0].radio is not None:
        link_energy[0] += links[0].radio.tail_j
    return CostModel(
        tiers=tuple(t.name for t in tiers),
        backends=backends,
        links=tuple(link.name for link in links),
        precisions=precisions,
        codecs=codecs,
        nodes=tuple(n.name for n in nodes),
        node_latency=node_latency,
        node_energy=node_energy,
        weight_bytes=np.array([[n.param_bytes * predict.BYTES_PER_ELEMENT[p] / 4 for p in precisions] for n in nodes]),
        activation_bytes=np.array([graph.input_bytes(n.name) + n.output_bytes for n in nodes], dtype=float),
        accuracy_drop=_accuracy(nodes, precisions, compression.drop),
        tensors=tuple(TensorCosts(t.name, index[t.producer], tuple(index[c] for c in t.consumers),
                                  is_output=t.name in graph.outputs) for t in tensor_list),
        transfer_latency=transfer_latency,
        transfer_energy=transfer_energy,
        codec_accuracy_drop=_codec_accuracy(tensor_list, codecs, compression.drop),
        return_latency=return_latency,
        return_energy=return_energy,
        link_latency=link_latency,
        link_energy=link_energy,
        pinned=_pins(graph, deployment, index),
        unordered=frozenset(i for i, n in enumerate(nodes) if n.op_type == GRAPH_OUTPUT),
        output_tier=deployment.output_tier,
        memory_budget=tuple(t.memory_budget for t in tiers),
        latency_budget=deployment.budgets.latency_s,
        energy_budget=deployment.budgets.device_energy_j,
        accuracy_budget=deployment.budgets.accuracy_drop,
        wire_bytes=np.array([[codec_bytes(t, c, compression) for c in codecs] for t in tensor_list],
                            dtype=float).reshape(len(tensor_list), len(codecs)),
    )


def codec_bytes(tensor: Tensor, codec: str, compression: Compression | None = None) -> int:
    """Bytes on the wire: measured for entropy coding, exact otherwise (only float tensors shrink)."""
    measured = (compression.wire_bytes.get((tensor.name, codec)) if compression else None)
    if measured is not None:
        return int(round(measured))
    lossy = codec_formats.base(codec)
    per_element = CODEC_BYTES_PER_ELEMENT[lossy]
    if per_element is None or not tensor.dtype.startswith(("float", "bfloat")):
        return tensor.nbytes
    return tensor.elements * per_element + codec_formats.HEADER_BYTES[lossy]


def codec_seconds(tensor: Tensor, codec: str, sender: Tier, receiver: Tier,
                  compression: Compression) -> tuple[float, float]:
    """Encode seconds on the sender, decode seconds on the receiver. Measured times are scaled from
    the measuring host by memory bandwidth; unmeasured conversions cost one pass over the tensor."""
    measured = compression.codec_seconds.get((tensor.name, codec))
    if measured is not None and compression.host_memory_bandwidth:
        host = compression.host_memory_bandwidth
        return (measured[0] * host / sender.device.memory_bandwidth,
                measured[1] * host / receiver.device.memory_bandwidth)
    lossy = codec_formats.base(codec)
    convert = 0.0 if lossy == "raw" or codec_bytes(tensor, lossy) == tensor.nbytes else tensor.nbytes * 8
    encode, decode = convert / sender.device.memory_bandwidth, convert / receiver.device.memory_bandwidth
    if codec_formats.entropy_coded(codec):
        zlib_s = codec_bytes(tensor, lossy) / UNMEASURED_ZLIB_BPS
        encode, decode = encode + zlib_s, decode + zlib_s
    return encode, decode


def _transfers(tensors: list[Tensor], links: tuple[Link, ...], codecs: tuple[str, ...],
               tiers: tuple[Tier, ...], compression: Compression) -> tuple[np.ndarray, np.ndarray]:
    """[T, L, C] seconds and device joules to send each tensor up each link in each codec."""
    latency = np.zeros((len(tensors), len(links), len(codecs)))
    energy = np.zeros_like(latency)
    device = tiers[0].device
    for t, tensor in enumerate(tensors):
        for li, link in enumerate(links):
            for c, codec in enumerate(codecs):
                lossy = codec_formats.base(codec)
                if lossy != "raw" and compression.unmeasured((f"tensor:{tensor.name}", lossy)):
                    latency[t, li, c] = energy[t, li, c] = np.inf  # no evidence: never chosen
                    continue
                wire = codec_bytes(tensor, codec, compression)
                encode, decode = codec_seconds(tensor, codec, tiers[li], tiers[li + 1], compression)
                airtime = link.up_seconds(wire)
                latency[t, li, c] = encode + airtime + decode
                if li == 0 and link.radio is not None:
                    energy[t, li, c] = (link.radio.send_energy(wire, link.uplink_bps) + device.active_power_w * encode
                                        + device.idle_power_w * decode)
                elif li == 0:
                    energy[t, li, c] = device.active_power_w * encode + device.idle_power_w * (airtime + decode)
                else:
                    energy[t, li, c] = device.idle_power_w * latency[t, li, c]
    return latency, energy


def _accuracy(nodes: tuple[Node, ...], precisions: tuple[str, ...],
              sensitivity: Mapping[tuple[str, str], float]) -> np.ndarray:
    drop = np.zeros((len(nodes), len(precisions)))
    for v, node in enumerate(nodes):
        for q, precision in enumerate(precisions):
            if precision != "fp32":
                drop[v, q] = max(0.0, sensitivity.get((node.name, precision), 0.0))
    return drop


def _codec_accuracy(tensors: list[Tensor], codecs: tuple[str, ...],
                    sensitivity: Mapping[tuple[str, str], float]) -> np.ndarray:
    """Entropy coding is lossless: a codec costs what its lossy part costs."""
    drop = np.zeros((len(tensors), len(codecs)))
    for t, tensor in enumerate(tensors):
        for c, codec in enumerate(codecs):
            lossy = codec_formats.base(codec)
            if lossy != "raw":
                drop[t, c] = max(0.0, sensitivity.get((f"tensor:{tensor.name}", lossy), 0.0))
    return drop


def _pins(graph: LayerGraph, deployment: Deployment, index: dict[str, int]) -> dict[int, int]:
    """Node index -> tier. Two pins that put one layer on different tiers are refused, naming both."""
    pins: dict[int, int] = {}
    reasons: dict[int, str] = {}
    where = deployment.path or "deploy.toml"

    def pin(name: str, tier: int, reason: str) -> None:
        v = index[name]
        if v in pins and pins[v] != tier:
            raise BadInputError(f"{where}: {reason} puts '{name}' on tier '{deployment.tiers[tier].name}', but "
                                f"{reasons[v]} puts it on '{deployment.tiers[pins[v]].name}'")
        pins[v], reasons[v] = tier, reason

    for node in graph.nodes:
        if node.op_type == GRAPH_INPUT:
            pins[index[node.name]], reasons[index[node.name]] = 0, "the model's input"
        elif node.op_type == GRAPH_OUTPUT:
            pins[index[node.name]], reasons[index[node.name]] = deployment.output_tier, "[deploy].output_tier"
    for name, tier in deployment.pins.nodes.items():
        if name not in index:
            close = sorted(n for n in index if name.lower() in n.lower())[:5]
            hint = f"; similar: {', '.join(close)}" if close else ""
            raise BadInputError(f"{where}: [pins].nodes names '{name}', which is not a node of the model{hint}")
        pin(name, deployment.tier_index(tier, f"[pins].nodes.{name}"), f"[pins].nodes.{name}")
    for node in graph.layers[: deployment.pins.first_layers]:
        pin(node.name, 0, f"[pins].first_layers = {deployment.pins.first_layers}")
    if deployment.pins.input_stays_on_device:
        for name in graph.inputs:
            for consumer in graph.tensors[name].consumers:
                pin(consumer, 0, "[pins].input_stays_on_device")
    return pins
