"""Calibrate a device profile on a measured profile: per-op-class efficiency and per-layer overhead
fitted so the roofline reproduces the measured layer times, then used to predict other models.

Fit: the per-layer overhead is the median time of the measured layers that do almost no work;
each op class's efficiency is the ratio estimate sum(flops) / (peak x sum(time - overhead)) over
its compute-bound layers. A class the model has no such layer of borrows the fitted value of its
nearest kin (convolutions and matrix products run the same GEMM kernels; normalisation and pooling
are vector work like element-wise ops), else keeps the profile's value.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgepart.graph import LayerGraph
from edgepart.hardware.devices import DeviceProfile

TRIVIAL_FLOPS = 1e4
KIN = {"matmul": "conv", "conv": "matmul", "normalization": "elementwise", "pool": "elementwise",
       "elementwise": "normalization"}


def calibrate(device: DeviceProfile, graph: LayerGraph, measured: dict, precision: str = "fp32") -> DeviceProfile:
    """`measured`: a profile document of `graph`'s model on this device."""
    times = {name: layer["calibrated_s"] for name, layer in measured["precisions"][precision]["layers"].items()}
    layers = [n for n in graph.layers if n.name in times]
    trivial = [times[n.name] for n in layers if n.flops < TRIVIAL_FLOPS]
    overhead = float(np.median(trivial)) if trivial else device.layer_overhead_s
    peak = device.peak_ops[precision]
    fitted = {}
    for op_class in device.efficiency:
        members = [n for n in layers if n.op_class == op_class and n.flops >= TRIVIAL_FLOPS]
        work = sum(max(times[n.name] - overhead, 1e-9) for n in members)
        if members and work > 0:
            fitted[op_class] = sum(n.flops for n in members) / (peak * work)  # may exceed 1: peak is measured
    efficiency = {c: fitted.get(c, fitted.get(KIN.get(c, ""), value)) for c, value in device.efficiency.items()}
    return dataclasses.replace(device, efficiency=efficiency, layer_overhead_s=overhead,
                               provenance=f"{device.provenance}, calibrated on {measured['model']['path']}")
