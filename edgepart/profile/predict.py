"""Predicted layer latency on a device that is not at hand: a roofline with per-op-class efficiency.

seconds = max(flops / (peak[precision] * efficiency[op class]), bytes moved / memory bandwidth)
          + per-layer overhead
Bytes moved are the layer's inputs, outputs and weights at the precision it runs in.
"""

from __future__ import annotations

from edgepart.graph import LayerGraph, Node
from edgepart.hardware.devices import DeviceProfile

BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}


def node_seconds(graph: LayerGraph, node: Node, device: DeviceProfile, precision: str,
                 threads: int | None = None) -> float:
    """Predicted seconds for one layer run with `threads` threads (None: every core of the device's
    peak); pseudo-nodes cost nothing."""
    if node.is_pseudo:
        return 0.0
    scale = BYTES_PER_ELEMENT[precision] / 4
    moved = scale * (graph.input_bytes(node.name) + node.output_bytes + node.param_bytes)
    compute = node.flops / (device.peak(precision, threads) * device.efficiency[node.op_class])
    return max(compute, moved / device.memory_bandwidth) + device.layer_overhead_s


def end_to_end(graph: LayerGraph, device: DeviceProfile, precision: str) -> float:
    """Predicted seconds of the whole model: its layers in sequence (one thread, one stream)."""
    return sum(node_seconds(graph, node, device, precision) for node in graph.layers)


def node_energy(graph: LayerGraph, node: Node, device: DeviceProfile, precision: str, seconds: float) -> float:
    """Modelled joules: active power x time, or per-MAC and per-byte energies for accelerators."""
    if node.is_pseudo:
        return 0.0
    if device.energy_per_mac_j:
        moved = BYTES_PER_ELEMENT[precision] / 4 * (graph.input_bytes(node.name) + node.output_bytes + node.param_bytes)
        return node.macs * device.energy_per_mac_j[precision] + moved * device.energy_per_byte_j
    return device.active_power_w * seconds
