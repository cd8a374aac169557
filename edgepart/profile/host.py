"""Measure this host into a device profile (`make host-profile`): single-thread peak compute with a
large onnxruntime MatMul, memory bandwidth with a large copy. Power is not measurable here (no RAPL
on this VM): it is an estimate from the processor's TDP per core, and the profile says so."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from edgepart.graph import sessions
from edgepart.hardware.devices import profiles_dir
from edgepart.machine import host_description
from edgepart.profile.document import _date
from edgepart.profile.ort_profiler import RunOptions, session_options


def matmul_peak(size: int = 1024, repeats: int = 5) -> float:
    """Operations per second of one thread on a size^3 fp32 MatMul (best of `repeats`)."""
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = sessions.session(model, session_options(RunOptions(), "all"))
    feeds = {n: np.random.default_rng(0).standard_normal((size, size)).astype(np.float32) for n in "ab"}
    session.run(None, feeds)
    best = min(_timed(lambda: session.run(None, feeds)) for _ in range(repeats))
    return 2 * size**3 / best


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes per second moved (read + write) by a large numpy copy."""
    source = np.ones(megabytes * 2**20 // 8)
    target = np.empty_like(source)
    best = min(_timed(lambda: np.copyto(target, source)) for _ in range(repeats))
    return 2 * source.nbytes / best


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def host_profile() -> dict:
    peak = matmul_peak()
    return {
        "kind": "edgepart.device", "schema_version": 1, "name": "local",
        "description": f"this build host ({host_description()['processor']}), one thread, measured",
        "device_kind": "cpu", "provenance": "measured", "cores": 1,  # the peak is one thread's
        "peak_ops": {"fp32": peak, "int8": 2 * peak},
        "memory_bandwidth": copy_bandwidth(), "memory_capacity": _memory_bytes(),
        "efficiency": {"conv": 0.45, "depthwise": 0.06, "matmul": 0.6, "elementwise": 0.5, "pool": 0.3,
                       "normalization": 0.3, "data_movement": 1.0, "other": 0.3},
        "layer_overhead_s": 4e-6,
        "power": {"idle_w": 2.0, "active_w": 7.5},
        "sources": [f"peak_ops and memory_bandwidth measured by edgepart.profile.host on {_date()} "
                    "(onnxruntime MatMul 1024^3, one thread; numpy 256 MiB copy); int8 assumed 2x fp32",
                    "efficiency: defaults for CPUs, to be calibrated on measured profiles",
                    "power: estimate for 2 vCPUs of a server CPU (~3.5 W per core at TDP, ~1 W idle); "
                    "no RAPL on this host",
                    "cores: 1 (peak_ops is one thread's, measured; a tier's threads do not scale it)"],
    }


def _memory_bytes() -> float:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure this host into edgepart/profiles/devices/local.json")
    parser.add_argument("-o", "--output", type=Path, default=profiles_dir() / "devices" / "local.json")
    args = parser.parse_args()
    args.output.write_text(json.dumps(host_profile(), indent=2, sort_keys=True) + "\n")
    print(args.output)


if __name__ == "__main__":
    main()
