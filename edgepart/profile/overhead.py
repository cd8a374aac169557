"""The two constants that separate onnxruntime's profiler from what a deployed session costs.

- Per-run overhead r: a `session.run` call costs a fixed amount besides its kernels (Python
  binding, input/output copies, executor set-up). Measured as the time of a one-kernel model.
- Profiler overhead per kernel o: the profiler's bookkeeping inflates every kernel's recorded
  duration. Measured on a chain of tiny kernels: recorded duration minus true time per kernel,
  the true time coming from the unprofiled run of the chain less r.
Both are measured with the same session options as the model being profiled.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgepart.profile.measure_timing import time_session
from edgepart.profile.ort_profiler import RunOptions, _kernel_samples

CHAIN = 64


@dataclass(frozen=True)
class Overheads:
    run_s: float
    profiler_per_kernel_s: float


def _relu_chain(length: int) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"], name=f"relu{i}") for i in range(length)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info(f"t{length}", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def measure_overheads(options: RunOptions) -> Overheads:
    feeds = {"t0": np.ones(1, np.float32)}
    runs = RunOptions(options.threads, warmup=20, repeat=200, optimization="none")
    single, _ = time_session(_relu_chain(1), feeds, runs)
    chain, _ = time_session(_relu_chain(CHAIN), feeds, runs)
    true_kernel = max(chain.median - single.median, 0.0) / (CHAIN - 1)
    with tempfile.TemporaryDirectory() as tmp:
        samples, _ = _kernel_samples(_relu_chain(CHAIN), feeds, runs, "none", tmp, lambda n: None)
    recorded = statistics.median(statistics.median(s) for s in samples.values())
    return Overheads(run_s=max(single.median - true_kernel, 0.0),
                     profiler_per_kernel_s=max(recorded - true_kernel, 0.0))
