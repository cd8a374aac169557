"""Profile a model as a TVM artifact: compiled for a target, run on this host or on a remote board
over TVM RPC, timed end to end on the device by TVM's time_evaluator, with NVML or RAPL energy
where this host has the meter.

Per layer: the kernels the artifact runs, compiled unfused and timed per call on this host's CPU
with a VM instrument, each mapped to its ONNX node (edgepart.profile.tvm_kernels): for a CPU target
built with edgepart's kernel library, its convolutions and matrix products are library calls as in
the artifact, each call's time split over the ONNX nodes it computes; the rest are TVM's kernels.
Those times are scaled so they add up to the deployed (fused) artifact's measured end-to-end time.
For a remote board or a GPU the per-layer proportions come from this host's CPU kernels (a CPU
board's with this host's kernel library when its artifact calls one); the profile says so.
"""

from __future__ import annotations

import json
import socket
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgepart import checks
from edgepart.errors import BadInputError, ToolError
from edgepart.graph import LoadedModel
from edgepart.graph.sessions import named_model
from edgepart.profile import energy, idle
from edgepart.profile.ort_profiler import RunOptions, Stats, sample_inputs
from edgepart.toolchain import compilers, packing, targets

CONNECT_TIMEOUT_S = 10.0


@dataclass
class TvmMeasurement:
    end_to_end: Stats
    layers: dict[str, Stats]  # the end-to-end time split by onnxruntime's unfused weights
    weights: dict[str, float]
    energy: energy.EnergyReading | None
    target: str
    where: str  # "this host" or "rpc://host:port"
    build_s: float
    scale: float = 1.0  # deployed end to end / sum of the unfused kernels
    build: dict | None = None  # what compile reported for the artifact (TvmCompiler's details)
    layer_kernels: dict | None = None  # the kernel library the per-layer timing used (build.kernels' form)
    idle: dict | None = None  # single runs after the device idled, against back to back (profile.idle)
    unattributed_share: float = 0.0  # of the unfused kernels' time, in kernels of no layer (per_layer)


def measure_tvm(loaded: LoadedModel, target: str, options: RunOptions, rpc: str | None = None,
                progress: Callable[[int], None] = lambda n: None, board=None) -> TvmMeasurement:
    """On this host, on the board at `rpc` (HOST:PORT), or on `board`, a farm's (edgepart.profile.farm)."""
    preset = targets.resolve(target, "--target")
    session = board.session if board is not None else connect(rpc) if rpc else None
    where = f"rpc://{board.address}" if board is not None else f"rpc://{rpc}" if rpc else "this host"
    if session is None and preset.elf_machine and preset.elf_machine != _host_machine():
        raise BadInputError(f"--target {preset.name} does not run on this host; profile it on the board with --rpc")
    with tempfile.TemporaryDirectory(prefix="edgepart-tvm-profile-") as tmp:
        source = Path(tmp) / "model.onnx"
        onnx.save(named_model(loaded), source)
        artifact = compilers.TvmCompiler().compile(source, preset, Path(tmp), "model")
        from edgepart.toolchain.tvm_tier import TvmTier  # noqa: PLC0415 - TVM's runtime only

        tier = TvmTier(artifact.path, preset.device, session=session)
        inputs = list(sample_inputs(loaded).values())
        tier.time(inputs, number=1, repeat=max(1, options.warmup))  # warm-up: caches, lazy init
        number = _runs_per_repeat(tier, inputs)
        seconds = tier.time(inputs, number=number, repeat=options.repeat)
        idle_record = idle_penalty(tier, inputs, statistics.median(seconds))
        progress(options.warmup + options.repeat)
        meter = energy.meter(preset.device) if session is None else None
        reading = energy.measure(tier.run_stateful, meter, tier.sync) if meter else None
        kernels, layer_kernels = kernel_times(loaded, source, preset, options,
                                              offloaded=bool(artifact.details.get("kernels", {}).get("library")))
    progress(options.repeat)
    end_to_end = Stats.of(seconds)
    layers, scale = per_layer(loaded, kernels, end_to_end)
    names = {node.name for node in loaded.graph.layers}
    total = sum(statistics.median(v) for v in kernels.values()) or 1.0
    unattributed = sum(statistics.median(v) for k, v in kernels.items() if k not in names) / total
    return TvmMeasurement(end_to_end, layers, {name: s.median for name, s in layers.items()}, reading, preset.name,
                          where, artifact.details.get("seconds", 0.0), scale,
                          artifact.details, layer_kernels, idle_record, unattributed)


def reference_run(loaded: LoadedModel, target: str, folder: Path) -> Callable:
    """`seconds(board)`: the median time of `loaded` as compile builds it for `target`, on the board
    (edgepart.profile.farm.BoardSpeeds: the same run on every board of a key says which differ)."""
    preset = targets.resolve(target, "--target")
    source = folder / "reference.onnx"
    onnx.save(named_model(loaded), source)
    artifact = compilers.TvmCompiler().compile(source, preset, folder, "reference")
    inputs = list(sample_inputs(loaded).values())

    def seconds(board) -> float:
        from edgepart.toolchain.tvm_tier import TvmTier  # noqa: PLC0415 - TVM's runtime only

        tier = TvmTier(artifact.path, preset.device, session=board.session)
        tier.time(inputs, number=1, repeat=2)  # warm-up
        return statistics.median(tier.time(inputs, number=_runs_per_repeat(tier, inputs), repeat=5))

    return seconds


def rounds(options: RunOptions) -> int:
    """The progress units measure_tvm reports: the artifact's timed runs (warm-up and repeat), then
    the kernel timing's repeat."""
    return options.warmup + 2 * options.repeat


def idle_penalty(tier, inputs, back_to_back_s: float) -> dict:
    """profile.idle for a TVM artifact: single runs after idle.IDLE_GAP_S against single runs back
    to back, both timed on the device (the mean of many back-to-back runs hides a slow first one)."""
    rounds = max(idle.MIN_ROUNDS, min(idle.MAX_ROUNDS, int(idle.BUDGET_S / (idle.IDLE_GAP_S + 2 * back_to_back_s))))
    after = statistics.median(tier.time_after_idle(inputs, idle.IDLE_GAP_S, rounds))
    hot = statistics.median(tier.time(inputs, number=1, repeat=rounds))
    return idle.record(after, hot, idle.IDLE_GAP_S, rounds,
                       "TVM time_evaluator on the device: single runs after a cool-down of the gap, "
                       "against single runs back to back")


def per_layer(loaded: LoadedModel, kernels: dict[str, list[float]],
              end_to_end: Stats) -> tuple[dict[str, Stats], float]:
    """Layer times: the unfused kernel times scaled so the layers' medians add up to the deployed
    artifact's end-to-end median; and that scale. Kernels of no layer of the model (a node onnxruntime's
    constant folding renamed, where the model was imported from its folded copy) are left out of the
    sum, so their time is spread over the layers rather than lost."""
    layers = {node.name for node in loaded.graph.layers}
    scale = end_to_end.median / (sum(statistics.median(v) for k, v in kernels.items() if k in layers) or 1.0)
    return ({node.name: Stats.of([scale * t for t in kernels.get(node.name, [0.0])]) for node in loaded.graph.layers},
            scale)


def kernel_times(loaded: LoadedModel, source: Path, preset: targets.TargetPreset, options: RunOptions,
                 offloaded: bool = False) -> tuple[dict[str, list[float]], dict | None]:
    """{layer: seconds per run} of the unfused kernels on this host's CPU (edgepart.profile.tvm_kernels),
    and the kernel library record of that timing (None: TVM's kernels only). `offloaded`: the
    artifact calls the kernel library (its build.kernels names one); the timing then calls this
    host's, as compile decides for a tier here (TvmCompiler.kernel_spec)."""
    here = preset.device == "cpu" and preset.elf_machine == _host_machine()
    tensors = loaded.graph.tensors
    kernels = (compilers.TvmCompiler().kernel_spec(preset.elf_machine if here else _host_machine(), "profile",
                                                   here and packing.has_avx512(preset.target))
               if offloaded and preset.device == "cpu" else None)
    spec = {"onnx": str(source), "target": preset.target if here else {"kind": "llvm"}, "kernels": kernels,
            "input_shapes": {n: list(tensors[n].shape) for n in loaded.graph.inputs},
            "input_dtypes": {n: tensors[n].dtype for n in loaded.graph.inputs},
            "warmup": max(1, options.warmup), "repeat": options.repeat}
    spec_path = source.with_suffix(".kernels.json")
    spec_path.write_text(json.dumps(spec))
    result = compilers.run_tvm_process("edgepart.profile.tvm_kernels", str(spec_path))
    if result.returncode != 0:
        raise ToolError(f"TVM kernel profiling failed: {compilers.last_error(result.stderr)}")
    timed = json.loads(result.stdout.strip().splitlines()[-1])
    return timed["layers"], timed["kernels"]


def connect(address: str):
    """A TVM RPC session; an unreachable server is a clear error after CONNECT_TIMEOUT_S, never a hang."""
    host_port = checks.host_port(address)
    if host_port is None:
        raise BadInputError(f"--rpc '{address}': expected HOST:PORT (a port from 1 to 65535)")
    try:
        socket.create_connection(host_port, timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ToolError(f"--rpc {address}: no TVM RPC server reachable ({exc.strerror or exc})") from None
    from edgepart.toolchain.tvm_tier import _import_tvm_runtime  # noqa: PLC0415

    _import_tvm_runtime()
    from tvm import rpc  # noqa: PLC0415 - after the runtime-only import above

    try:
        return rpc.connect(*host_port, session_timeout=600)
    except Exception as exc:  # TVM raises its own error types
        raise ToolError(f"--rpc {address}: {str(exc).splitlines()[0]}") from None


def _runs_per_repeat(tier, inputs) -> int:
    """Back-to-back runs per timed repeat so each repeat lasts about 10 ms (timer resolution, noise)."""
    once = statistics.median(tier.time(inputs, number=1, repeat=3))
    return max(1, min(1000, int(0.01 / max(once, 1e-7))))


def _host_machine() -> str:
    from edgepart.toolchain.elf import HOST_MACHINE  # noqa: PLC0415

    return HOST_MACHINE
