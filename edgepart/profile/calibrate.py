"""Calibrate a device profile on a measured profile: per-op-class efficiency and per-layer overhead
fitted so the roofline reproduces the measured layer times, then used to predict other models.

Fit: the per-layer overhead is the median time of the measured layers that do almost no work;
each op class's efficiency is the ratio estimate sum(flops) / (peak x sum(time - overhead)) over
its compute-bound layers (a class with no such layer keeps the profile's value).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgepart.graph import LayerGraph
from edgepart.hardware.devices import DeviceProfile

TRIVIAL_FLOPS = 1e4


def calibrate(device: DeviceProfile, graph: LayerGraph, measured: dict, precision: str = "fp32") -> DeviceProfile:
    """`measured`: a profile document of `graph`'s model on this device."""
    times = {name: layer["calibrated_s"] for name, layer in measured["precisions"][precision]["layers"].items()}
    layers = [n for n in graph.layers if n.name in times]
    trivial = [times[n.name] for n in layers if n.flops < TRIVIAL_FLOPS]
    overhead = float(np.median(trivial)) if trivial else device.layer_overhead_s
    efficiency = dict(device.efficiency)
    peak = device.peak_ops[precision]
    for op_class in efficiency:
        members = [n for n in layers if n.op_class == op_class and n.flops >= TRIVIAL_FLOPS]
        work = sum(max(times[n.name] - overhead, 1e-9) for n in members)
        if members and work > 0:
            efficiency[op_class] = sum(n.flops for n in members) / (peak * work)  # may exceed 1: peak is measured
    return dataclasses.replace(device, efficiency=efficiency, layer_overhead_s=overhead,
                               provenance=f"{device.provenance}, calibrated on {measured['model']['path']}")
