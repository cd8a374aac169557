"""Per-layer latency with onnxruntime's own profiler, for the deployed (fused) session.

Two profiled passes over the same inputs: with all graph optimisations (what runs in production;
kernels are fused and renamed) and with none (one kernel per ONNX node). Each fused kernel is mapped
back to the ONNX nodes it absorbed, and its time is split over them in proportion to their unfused
times. Mapping (measured to cover every node): a kernel named after an ONNX
node is that node; a kernel named `<tensor>_nchwc` is the producer of that tensor; layout kernels
(ReorderInput/ReorderOutput) belong to the producer of the original tensor they read or write;
an absorbed node joins the kernel of its consumers (or of its sole producer) when that is unique.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgepart.errors import BadInputError, ToolError
from edgepart.graph import LoadedModel, sessions
from edgepart.graph import feeds as seeded_feeds
from edgepart.graph.sessions import named_model

LAYOUT_OPS = {"ReorderInput", "ReorderOutput"}
BLOCK = 5  # runs averaged per sample in Stats.of_ticks
# Sessions timed round-robin run this many times in a row and only the last run counts, so each is
# timed hot, its weights back in the caches the other sessions evicted (measure_timing says why).
HOT_RUNS = 3
NCHWC_DOMAIN = "com.microsoft.nchwc"
LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}


# A round of several sessions of a large model takes seconds (torchvision's ViT-B/16: about 5 s
# for the profiled pass): warm-up rounds stop at WARMUP_SECONDS (at least one), and the profiled
# pass's measured rounds at PROFILE_SECONDS (at least MIN_PROFILED_ROUNDS), below --warmup/--repeat.
WARMUP_SECONDS = 5.0
PROFILE_SECONDS = 30.0
MIN_PROFILED_ROUNDS = 10


@dataclass(frozen=True)
class RunOptions:
    threads: int = 1
    warmup: int = 10
    repeat: int = 50
    optimization: str = "all"

    def warmup_for(self, round_s: float) -> int:
        """Warm-up rounds of `round_s` seconds each: --warmup, fewer where they pass WARMUP_SECONDS."""
        return rounds_within(round_s, WARMUP_SECONDS, 1, self.warmup) if self.warmup and round_s > 0 else self.warmup


def rounds_within(round_s: float, seconds: float, least: int, most: int) -> int:
    """How many rounds of `round_s` seconds fill `seconds`, at least `least` and at most `most`."""
    return min(max(least, math.ceil(seconds / round_s)), most)


@dataclass
class Stats:
    """Seconds over repeated runs."""

    median: float
    p10: float
    p90: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        values = np.asarray(samples, dtype=float)
        return cls(float(np.median(values)), float(np.percentile(values, 10)), float(np.percentile(values, 90)),
                   len(values))

    @classmethod
    def of_ticks(cls, samples: list[float]) -> Stats:
        """Stats of profiler samples counted in whole microseconds. A median of such samples is
        itself a whole microsecond (a 3.4 us kernel reads 3), which on a 30 us model is a 10% error
        per kernel; the median here is taken over means of BLOCK consecutive runs instead, which
        resolve a tenth of the tick and still shrug off the odd slow run. p10/p90 stay per run."""
        per_run = cls.of(samples)
        blocks = len(samples) // BLOCK
        if blocks < 3:
            return per_run
        means = np.asarray(samples[: blocks * BLOCK], dtype=float).reshape(blocks, BLOCK).mean(axis=1)
        return dataclasses.replace(per_run, median=float(np.median(means)))

    def as_dict(self) -> dict:
        return {"median_s": self.median, "p10_s": self.p10, "p90_s": self.p90, "n": self.n}


def session_options(options: RunOptions, level: str, profile_prefix: str | None = None,
                    optimized_path: str | None = None) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = LEVELS[level]
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return so


def sample_inputs(loaded: LoadedModel, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for the model (edgepart.graph.feeds)."""
    return seeded_feeds.for_graph(loaded.graph, seed)


@dataclass
class Passes:
    """What one interleaved measurement gives: per-layer times, and the plain session's end to end."""

    layers: dict[str, Stats]
    end_to_end: Stats  # wall clock of the plain (unprofiled) session
    end_to_end_cpu: Stats | None  # its thread CPU time, with one thread
    mapping: dict
    cuts: CutModel
    profiler_per_kernel_s: float  # taken off every kernel (from the probe timed in the same rounds)


@dataclass(frozen=True)
class ProfilerProbe:
    """A chain of tiny kernels profiled in the same rounds as the model: its kernels' recorded times
    less their true time (`kernel_s`) are the profiler's own cost per kernel in that machine state.
    Measured apart, that cost moved by 0.4 us between two profiles of the digits CNN, and a Relu
    cut from its convolution was then predicted at anything from 0 to 2.8 us."""

    model: onnx.ModelProto
    feeds: dict
    kernel_s: float


@dataclass
class CutModel:
    """What cutting the deployed session between two layers changes, for predicting sub-models:
    the layers of a fused kernel the cut splits run as kernels of their own (split_times), and a
    tensor that stays in onnxruntime's blocked NCHWc layout inside the model must be reordered to
    plain NCHW and back when it crosses the cut."""

    kernel_of: dict[str, str]  # layer -> the fused kernel computing it
    standalone_s: dict[str, float]  # layer -> its time as a kernel of its own
    blocked: set[str]  # layers whose kernel works in the blocked layout

    @functools.cached_property
    def layers_of(self) -> dict[str, list[str]]:
        """Fused kernel -> the layers it computes."""
        groups: dict[str, list[str]] = defaultdict(list)
        for layer, kernel in self.kernel_of.items():
            groups[kernel].append(layer)
        return groups

    def split_groups(self, members: set[str]) -> set[str]:
        """The members whose fused kernel also computes a layer outside `members`."""
        return {layer for layer in members if layer in self.kernel_of
                and not members.issuperset(self.layers_of[self.kernel_of[layer]])}

    def split_times(self, members: set[str], fused_s: dict[str, float]) -> dict[str, float]:
        """Seconds of each member whose fused kernel the cut splits (`fused_s`: layer times in the
        whole model). The group's heaviest layer (the convolution a Relu or Add was fused into)
        takes the whole kernel's time: the sub-model runs it in the same optimised form, only without
        the nearly free fused tail. The others run as kernels of their own (standalone_s)."""
        times = {}
        for layer in self.split_groups(members):
            group = self.layers_of[self.kernel_of[layer]]
            anchor = max(group, key=lambda m: self.standalone_s.get(m, 0.0))
            times[layer] = (sum(fused_s.get(m, 0.0) for m in group) if layer == anchor
                            else self.standalone_s.get(layer, fused_s.get(layer, 0.0)))
        return times


def profile_layers(loaded: LoadedModel, options: RunOptions, progress: Callable[[int], None] = lambda n: None,
                   probe: ProfilerProbe | None = None) -> Passes:
    """Per-layer seconds of the session at `options.optimization`, and its end-to-end time.

    Sessions run round-robin on the same inputs, so all see the same machine state, each HOT_RUNS
    times in a row with the last run counted: the profiled unfused one (weights for splitting
    fused kernels), the profiled deployed one, a plain one timed end to end, and the `probe` whose
    measured profiler cost per kernel is taken off every kernel's recorded time (none without it)."""
    model, feeds = named_model(loaded), sample_inputs(loaded)
    with tempfile.TemporaryDirectory() as tmp:
        optimized_path = str(Path(tmp) / "optimized.onnx")
        unfused_session = _session(model, session_options(options, "none", str(Path(tmp) / "unfused")))
        fused_session = _session(model, session_options(options, options.optimization, str(Path(tmp) / "fused"),
                                                        optimized_path))
        plain = _session(model, session_options(options, options.optimization))
        probe_session = probe and _session(probe.model, session_options(options, "none", str(Path(tmp) / "probe")))
        wall, cpu, slowdown = [], [], []
        warmup, repeat = options.warmup, options.repeat
        i = 0
        while i < warmup + repeat:
            started = time.perf_counter()
            if probe_session:
                for _ in range(HOT_RUNS):
                    _run(probe_session, probe.feeds)
            for _ in range(HOT_RUNS):
                _run(unfused_session, feeds)
            for _ in range(HOT_RUNS - 1):
                _run(fused_session, feeds)
            start = time.perf_counter()
            _run(fused_session, feeds)
            profiled_s = time.perf_counter() - start
            for _ in range(HOT_RUNS - 1):
                _run(plain, feeds)
            start_wall, start_cpu = time.perf_counter(), time.thread_time()
            _run(plain, feeds)
            if i >= warmup:
                cpu.append(time.thread_time() - start_cpu)
                wall.append(time.perf_counter() - start_wall)
                slowdown.append(profiled_s / wall[-1])
            if i == 0:  # the first round's time bounds the rest (a large model's rounds take seconds)
                round_s = time.perf_counter() - started
                warmup = options.warmup_for(round_s)
                repeat = rounds_within(round_s, PROFILE_SECONDS, MIN_PROFILED_ROUNDS, options.repeat)
            progress(3)
            i += 1
        progress(3 * (options.warmup + options.repeat - warmup - repeat))  # the rounds not needed
        unfused, _ = _trace_samples(unfused_session, warmup, HOT_RUNS)
        fused, runs = _trace_samples(fused_session, warmup, HOT_RUNS)
        kernel_overhead_s = 0.0
        if probe_session:
            # The mean over all kernels and runs: a median of whole-microsecond ticks would snap to
            # a whole microsecond, and this is taken off every kernel of the model.
            recorded = [t for kernel in _trace_samples(probe_session, warmup, HOT_RUNS)[0].values()
                        for t in kernel]
            kernel_overhead_s = max(float(np.mean(recorded)) - probe.kernel_s, 0.0)
        optimized = onnx.load(optimized_path, load_external_data=False)
    # Each run's kernels at the host's median speed: scaled by the plain run of the same round
    # (measure_timing.paired_medians says why), so that the layers add up as the rounds did.
    pace = np.median(wall) / np.asarray(wall) if runs == len(wall) else np.ones(runs)
    fused = {k: [max(t - kernel_overhead_s, 0.0) * p for t, p in zip(samples, pace)] for k, samples in fused.items()}
    weights = {name: max(Stats.of_ticks(samples).median - kernel_overhead_s, 0.0) for name, samples in unfused.items()}
    groups, unattributed = map_kernels(loaded, optimized)
    per_layer: dict[str, list[float]] = {n.name: [0.0] * runs for n in loaded.graph.layers}
    lost = [0.0] * runs
    for kernel, samples in fused.items():
        members = groups.get(kernel)
        if not members:
            lost = [a + b for a, b in zip(lost, samples)]
            continue
        shares = np.array([weights.get(m, 0.0) for m in members])
        shares = shares / shares.sum() if shares.sum() > 0 else np.full(len(members), 1 / len(members))
        for member, share in zip(members, shares):
            per_layer[member] = [a + share * b for a, b in zip(per_layer[member], samples)]
    mapping = {"kernels": len(fused), "unattributed_kernels": sorted(k for k in fused if not groups.get(k)),
               "unattributed_s": statistics.median(lost) if lost else 0.0,
               "profiler_slowdown": statistics.median(slowdown) if slowdown else 1.0,
               "layers_without_kernel": sorted(unattributed)}
    kernel_of: dict[str, str] = {}
    for kernel, members in groups.items():  # the layers' own kernels come before inserted ones
        for member in members:
            kernel_of.setdefault(member, kernel)
    blocked = blocked_kernels(optimized)
    cuts = CutModel(kernel_of, weights, {layer for layer, kernel in kernel_of.items() if kernel in blocked})
    return Passes({name: Stats.of_ticks(samples) for name, samples in per_layer.items()}, Stats.of(wall),
                  Stats.of(cpu) if options.threads == 1 else None, mapping, cuts, kernel_overhead_s)


def blocked_kernels(optimized: onnx.ModelProto) -> set[str]:
    """The kernels of the optimised graph that write the blocked NCHWc layout: the NCHWc ops, and
    any other op fed a blocked tensor (onnxruntime keeps a Concat or Add of blocked tensors
    blocked, and puts a ReorderOutput before any op that cannot take one). A Concat of the
    inception CNN's branches counted as plain left 4 reorders of a cut through it unpredicted."""
    tensors: set[str] = set()
    kernels = set()
    for node in optimized.graph.node:  # topological order
        if node.op_type == "ReorderOutput":
            continue
        if node.op_type == "ReorderInput" or node.domain == NCHWC_DOMAIN or any(t in tensors for t in node.input):
            tensors.update(node.output)
            if node.op_type not in LAYOUT_OPS:
                kernels.add(node.name)
    return kernels


def _session(model: onnx.ModelProto, options: ort.SessionOptions) -> ort.InferenceSession:
    try:
        return sessions.session(model, options)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise BadInputError(f"onnxruntime cannot load the model: {(str(exc).splitlines() or [''])[0]}") from None


def _run(session: ort.InferenceSession, feeds: dict) -> None:
    try:
        session.run(None, feeds)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ToolError(f"onnxruntime failed to run the model: {str(exc).splitlines()[0]}") from None


def _kernel_samples(model: onnx.ModelProto, feeds: dict, options: RunOptions, level: str, tmp: str,
                    progress: Callable[[int], None]) -> tuple[dict[str, list[float]], int]:
    """Seconds per kernel per measured run of one profiled session (warm-up runs dropped)."""
    session = _session(model, session_options(options, level, str(Path(tmp) / f"trace_{level}")))
    for _ in range(options.warmup + options.repeat):
        _run(session, feeds)
        progress(1)
    return _trace_samples(session, options.warmup)


def _trace_samples(session: ort.InferenceSession, warmup: int,
                   block: int = 1) -> tuple[dict[str, list[float]], int]:
    """Seconds per kernel per run from the profiler's trace: runs in blocks of `block` (the last of
    each counts), the first `warmup` blocks dropped."""
    trace = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("name") == "model_run")
    runs = runs[warmup * block + block - 1::block]
    samples: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(runs))
    starts = [start for start, _ in runs]
    for event in trace:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        run = int(np.searchsorted(starts, event["ts"], side="right")) - 1
        if run < 0 or event["ts"] > runs[run][1]:
            continue
        samples[event["name"][: -len("_kernel_time")]][run] += event["dur"] * 1e-6
    return dict(samples), len(runs)


def map_kernels(loaded: LoadedModel, optimized: onnx.ModelProto) -> tuple[dict[str, list[str]], set[str]]:
    """Kernel name -> the layers it computes; and the layers no kernel computes (folded or removed)."""
    graph = loaded.graph
    layer_names = {n.name for n in graph.layers}
    producer = {t.name: t.producer for t in graph.tensors.values() if t.producer in layer_names}
    owner: dict[str, str] = {}  # layer -> the kernel that computes it
    helpers: list[onnx.NodeProto] = []  # layout and other inserted kernels
    for node in optimized.graph.node:
        layer = None if node.op_type in LAYOUT_OPS else _named_layer(node, layer_names, producer)
        if layer is not None and layer not in owner:
            owner[layer] = node.name
        else:
            helpers.append(node)
    _absorb(graph, owner, {n.name: i for i, n in enumerate(optimized.graph.node)})
    groups: dict[str, list[str]] = defaultdict(list)
    for layer, kernel in owner.items():
        groups[kernel].append(layer)
    kernel_of_tensor = {t: n.name for n in optimized.graph.node for t in n.input}
    for node in helpers:  # inserted kernels: the layer whose tensor they write, feed, or read
        written = [producer[t] for t in node.output if t in producer]
        fed = [groups[kernel_of_tensor[t]][0] for t in node.output
               if kernel_of_tensor.get(t) in groups and groups[kernel_of_tensor[t]]]
        read = [producer[t] for t in node.input if t in producer]
        target = (written or fed or read or [None])[0]
        if target is not None:
            groups[node.name] = [target]
    return dict(groups), layer_names - set(owner)


def _named_layer(node: onnx.NodeProto, layer_names: set[str], producer: dict[str, str]) -> str | None:
    """The layer a kernel is named after: the node itself, `<node>/<fusion>`, `fused <node>`, or
    `<tensor>_nchwc`; else the producer of an original tensor the kernel writes."""
    name = node.name
    for candidate in (name, name.split("/")[0], name.removeprefix("fused ")):
        if candidate in layer_names:
            return candidate
    if name.endswith("_nchwc") and name[: -len("_nchwc")] in producer:
        return producer[name[: -len("_nchwc")]]
    written = [producer[t] for t in node.output if t in producer]
    return written[0] if written else None


def _absorb(graph, owner: dict[str, str], position: dict[str, int]) -> None:
    """Give each unmapped layer the kernel of its consumers when they share one, else of a
    producer that feeds only it (an element-wise op fused into the kernel before it; of two such,
    the later kernel, which read the other's output as its fused operand)."""
    changed = True
    while changed:
        changed = False
        for node in graph.layers:
            if node.name in owner:
                continue
            consumers = {c for t in node.outputs for c in graph.tensors[t].consumers if not c.startswith("output:")}
            kernels = {owner.get(c) for c in consumers}
            if consumers and len(kernels) == 1 and None not in kernels:
                owner[node.name] = kernels.pop()
                changed = True
                continue
            exclusive = {owner[graph.tensors[t].producer] for t in node.inputs
                         if graph.tensors[t].consumers == (node.name,) and graph.tensors[t].producer in owner}
            if exclusive:
                owner[node.name] = max(exclusive, key=position.__getitem__)
                changed = True
