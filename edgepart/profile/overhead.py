"""The two constants that separate onnxruntime's profiler from what a deployed session costs.

- Per-run overhead r: a `session.run` call costs a fixed amount besides its kernels (Python
  binding, input/output copies, executor set-up). Measured as the time of a one-kernel model.
- Profiler overhead per kernel o: the profiler's bookkeeping inflates every kernel's recorded
  duration. Measured on a chain of tiny kernels: recorded duration minus true time per kernel,
  the true time coming from the unprofiled run of the chain less r.
Both are measured with the same session options as the model being profiled.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgepart.profile.measure_timing import time_interleaved, time_session
from edgepart.profile.ort_profiler import ProfilerProbe, RunOptions, Stats, _kernel_samples

CHAIN = 64


@dataclass(frozen=True)
class Overheads:
    run_s: float
    profiler_per_kernel_s: float
    reorder_s_per_byte: float = 0.0  # one onnxruntime layout change between NCHW and blocked NCHWc
    output_s_per_byte: float = 0.0  # handing a session's output back to the caller (fresh memory each run)
    probe_kernel_s: float = 0.0  # the true time of one kernel of the Relu chain

    def profiler_probe(self) -> ProfilerProbe:
        """The Relu chain, to measure the profiler's cost per kernel alongside a model."""
        return ProfilerProbe(_relu_chain(CHAIN), {"t0": np.ones(1, np.float32)}, self.probe_kernel_s)


def _relu_chain(length: int) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"], name=f"relu{i}") for i in range(length)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info(f"t{length}", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def smallest_run() -> tuple[onnx.ModelProto, dict]:
    """A session that does next to nothing (one Relu of one number): what any run costs."""
    return _relu_chain(1), {"t0": np.ones(1, np.float32)}


def measure_overheads(options: RunOptions) -> Overheads:
    feeds = {"t0": np.ones(1, np.float32)}
    runs = RunOptions(options.threads, warmup=20, repeat=200, optimization="none")
    single, _ = time_session(*smallest_run(), runs)
    chain, _ = time_session(_relu_chain(CHAIN), feeds, runs)
    true_kernel = max(chain.median - single.median, 0.0) / (CHAIN - 1)
    with tempfile.TemporaryDirectory() as tmp:
        samples, _ = _kernel_samples(_relu_chain(CHAIN), feeds, runs, "none", tmp, lambda n: None)
    # The mean over all 64 kernels and runs: a median of whole-microsecond ticks would snap to a
    # whole microsecond, and this constant is taken off every kernel of the model.
    recorded = float(np.mean([t for kernel in samples.values() for t in kernel]))
    profiler = max(recorded - true_kernel, 0.0)
    return Overheads(run_s=max(single.median - true_kernel, 0.0), profiler_per_kernel_s=profiler,
                     reorder_s_per_byte=_reorder_cost(options, profiler), output_s_per_byte=_output_cost(options),
                     probe_kernel_s=true_kernel)


def _output_cost(options: RunOptions) -> float:
    """Seconds per byte of a session output: the same kernels timed returning a 256 KiB tensor
    and not returning it (a sub-model cut out of a model returns what crosses its cut)."""
    elements = 65536
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("ReduceSum", ["y"], ["s"], keepdims=0)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [elements])
    total = helper.make_tensor_value_info("s", TensorProto.FLOAT, [])
    returned = helper.make_tensor_value_info("y", TensorProto.FLOAT, [elements])
    models = []
    for outputs in ([total], [total, returned]):
        model = helper.make_model(helper.make_graph(nodes, "output", [x], outputs),
                                  opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        models.append((model, {"x": np.ones(elements, np.float32)}))
    without, with_output = time_interleaved(models, RunOptions(options.threads, warmup=20, repeat=200))
    return max(with_output.median - without.median, 0.0) / (4 * elements)


def _reorder_cost(options: RunOptions, profiler_per_kernel_s: float, channels: int = 64, side: int = 96) -> float:
    """Seconds per byte of one layout change between plain NCHW and onnxruntime's blocked NCHWc
    (the mean of the two directions): a 1x1 convolution on a plain tensor is wrapped by the
    optimiser in a ReorderInput and a ReorderOutput. The default tensor (2.3 MB) is larger than the
    caches, as a tensor crossing a cut usually is not in them: 28x28 gave half this cost here."""
    shape = [1, channels, side, side]
    weight = helper.make_tensor("w", TensorProto.FLOAT, [channels, channels, 1, 1], np.zeros(channels * channels))
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "reorder",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    runs = RunOptions(options.threads, warmup=10, repeat=100, optimization="all")
    with tempfile.TemporaryDirectory() as tmp:
        samples, _ = _kernel_samples(model, {"x": np.ones(shape, np.float32)}, runs, "all", tmp, lambda n: None)
    reorders = [Stats.of_ticks(times).median - profiler_per_kernel_s
                for kernel, times in samples.items() if kernel.startswith(("ReorderInput", "ReorderOutput"))]
    return max(sum(reorders), 0.0) / (2 * 4 * channels * side * side) if len(reorders) == 2 else 0.0
