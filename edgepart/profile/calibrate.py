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

from edgepart import graph as graphs
from edgepart.errors import BadInputError
from edgepart.graph import LayerGraph
from edgepart.hardware.devices import DeviceProfile
from edgepart.profile.document import Profile

TRIVIAL_FLOPS = 1e4
KIN = {"matmul": "conv", "conv": "matmul", "normalization": "elementwise", "pool": "elementwise",
       "elementwise": "normalization"}


def calibrated_on(device: DeviceProfile, path: str) -> DeviceProfile:
    """The device profile fitted to the measured profile at `path` (--calibrate-with): one of
    this device, of a model that has not changed since."""
    measured = Profile.load(path)
    if "fp32" not in measured.precisions:
        raise BadInputError(f"{path}: precisions: --calibrate-with fits fp32 efficiencies; the profile has no fp32")
    if not any(measured.layer_times("fp32").values()):
        raise BadInputError(f"{path}: precisions.fp32.layers: no layer with a measured time; nothing to fit")
    if measured.device != device.name or measured.predicted:
        raise BadInputError(f"{path}: --calibrate-with needs a measured profile of device '{device.name}'")
    measured_model = graphs.load(measured.model_path)
    if measured_model.sha256 != measured.model_sha256:
        raise BadInputError(f"{path}: its model {measured.model_path} changed since it was profiled")
    return calibrate(device, measured_model.graph, measured)


def calibrate(device: DeviceProfile, graph: LayerGraph, measured: Profile, precision: str = "fp32") -> DeviceProfile:
    """`measured`: a profile of `graph`'s model on this device."""
    times = measured.layer_times(precision)
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
                               provenance=f"{device.provenance}, calibrated on {measured.model_path}")
