"""Compile one ONNX file for one target with TVM Relax, in a process of its own.

Run as `python -m edgepart.toolchain.tvm_worker SPEC.json`; prints a JSON summary on stdout.
A process per build isolates TVM crashes and lets CUDA builds get their own environment
(edgepart.toolchain.cuda_env) before TVM is imported.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path


def compile_onnx(spec: dict) -> dict:
    import tvm

    from edgepart.toolchain import cpu_pipeline

    started = time.perf_counter()
    mod, import_note = import_onnx(spec)
    imported = time.perf_counter()
    host = tvm.target.Target(spec["host"]) if spec.get("host") else None
    target = tvm.target.Target(spec["target"], host=host)
    kernels = None
    if spec["device"] == "cpu":  # before tuning and its layout change: the patterns want NCHW
        mod, kernels = cpu_kernels(mod, spec["kernels"])
    # CPU: a fusing pipeline (the "default" one does not fuse). GPU: "default" picks the target's
    # pipeline with dlight schedules; without them every kernel would silently become host code.
    pipeline = cpu_pipeline.pipeline(target) if spec["device"] == "cpu" else "default"
    tuning = None
    if spec.get("tune"):
        mod, tuning = tune(mod, target, spec["tune"]["trials"], spec["tune"]["database"], spec["tune"].get("rpc"),
                           spec.get("cc"))
    with target:  # the nvcc callback reads the arch from the current target
        executable = tvm.compile(mod, target, relax_pipeline=pipeline)
    compiled = time.perf_counter()
    device_modules = _device_module_kinds(executable)
    if spec["device"] != "cpu" and spec["device"] not in device_modules:
        raise RuntimeError(f"no {spec['device']} device module was generated (found {device_modules})")
    out = Path(spec["out"])
    if spec.get("export", "library") == "source":  # no toolchain here to link for this host
        sources = [m.inspect_source() for host in executable.mod.imports for m in host.imports]
        out.write_text("\n".join(sources))
    else:
        executable.export_library(str(out), **_linker(spec.get("cc")))
    return {
        "artifact": str(out),
        "bytes": out.stat().st_size,
        "device_modules": device_modules,
        "seconds": {"import": imported - started, "compile": compiled - imported,
                    "export": time.perf_counter() - compiled},
        "tvm_version": tvm.__version__,
        "tuning": tuning,
        "runtime_functions": runtime_functions(executable),
        **({"import": import_note} if import_note else {}),
        **({"kernels": kernels} if kernels is not None else {}),
    }


def identifier_inputs(model) -> dict[str, str]:
    """Rename the graph inputs that are not C identifiers (a cut tensor such as
    /conv_proj/Conv_output_0): TVM names kernel parameters after them, and nvcc fails on
    `float* input_/conv_proj/Conv_output_0_ptr`. Tiers are called with their inputs by position, so
    the names are TVM's business alone. Returns old -> new."""
    taken = {i.name for i in model.graph.input} | {n for node in model.graph.node for n in node.output}
    renamed = {}
    for index, value in enumerate(model.graph.input):
        if not value.name.isidentifier():
            new = f"input{index}_" + re.sub(r"\W", "_", value.name).strip("_")
            while new in taken:
                new += "_"
            taken.add(new)
            renamed[value.name], value.name = new, new
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
    for value in model.graph.output:  # an input passed straight through
        value.name = renamed.get(value.name, value.name)
    return renamed


def import_onnx(spec: dict) -> tuple:
    """The tier as a Relax module with its constants folded, and None (or the operators rewritten
    for TVM's importer, edgepart.toolchain.lowering); or, when TVM cannot import the file as it
    is, the module imported from onnxruntime's constant-folded copy and a note saying so.
    TorchScript exports of Swin-T (a Reshape of a computed shape) and ShuffleNetV2 (a Split with
    computed sizes) stop TVM 0.27's importer; once onnxruntime has folded those shape computations
    (its basic, ONNX-standard optimisations: same graph inputs and outputs, same numbers) they
    import."""
    import onnx
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from edgepart.toolchain.lowering import lower_for_tvm

    def load(model):
        lowered.extend(lower_for_tvm(model))
        names = identifier_inputs(model)
        mod = from_onnx(model, shape_dict={names.get(k, k): v for k, v in spec["input_shapes"].items()},
                        dtype_dict={names.get(k, k): v for k, v in spec["input_dtypes"].items()})
        return relax.transform.FoldConstant()(mod)

    lowered: list[str] = []
    try:
        return load(onnx.load(spec["onnx"])), "; ".join(lowered) or None
    except Exception as exc:  # TVM's importer raises its own error types
        original = exc
    try:
        mod = load(onnxruntime_folded(spec["onnx"]))
    except Exception:  # the folded copy does not help: report why the original failed
        raise original from None
    reason = (str(original).strip().splitlines() or [type(original).__name__])[-1][:200]
    return mod, f"imported after onnxruntime's constant folding (TVM could not import the file as it is: {reason})"


def onnxruntime_folded(path: str):
    import onnx
    import onnxruntime as ort

    from edgepart.graph import sessions

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        sessions.session(path, options)  # writes the optimised copy
        return onnx.load(options.optimized_model_filepath)


def cpu_kernels(mod, kernels: dict, inspect=None) -> tuple:
    """The module with its convolutions and matrix products offloaded to the kernel library the spec
    names (edgepart.toolchain.offload), and the record of it for the manifest; with no library, the
    module unchanged and the reason. `inspect`: offload.offload's."""
    from edgepart.toolchain import offload
    from edgepart.toolchain.kernel_library import KernelLibrary

    if kernels["library"] is None:
        return mod, {"library": None, "offloaded_calls": 0, "winograd_calls": 0, "packed_calls": 0,
                     "reason": kernels["reason"]}
    library = KernelLibrary(**kernels["library"])
    mod, calls = offload.offload(mod, library, kernels.get("packed", False), inspect)
    return mod, {"library": library.name, **calls}


def _linker(cc: str | None) -> dict:
    """export_library's arguments for a cross compiler. The object files TVM adds itself must be
    built for the compiler's target too: TVM asks the host's g++ for the triple unless told, and a
    tier whose every kernel was offloaded gets a host-triple object the cross linker refuses."""
    if not cc:
        return {}
    from tvm.support.cc import cross_compiler, get_target_by_dump_machine

    return {"fcompile": cross_compiler(cc, get_target_triple=get_target_by_dump_machine(cc))}


# Measured candidates per kernel by its share of the model's FLOPs: the kernels that hold the time
# get the trials asked for, the middling ones a quarter, and the rest (softmax, pooling, reshapes) one
# short round, whose schedules matter little but whose untuned defaults can cost more than a tuned
# convolution. Each trial budget is one MetaSchedule run over the kernels given it.
HEAVY_SHARE = 0.02
MEDIUM_SHARE = 0.005
LIGHT_TRIALS = 8

# Tuned convolutions are channels-last: with output channels innermost MetaSchedule finds whole-vector
# schedules in a few dozen trials, while in NCHW the innermost loop is the image width (12 or 28
# wide here). chain_cnn, 64 trials per kernel at AVX-512: NCHW 24-78 GFLOPS, NHWC 115-141 GFLOPS.
# Untuned, NHWC's default schedules are 10-16% slower, so only tuned builds convert.
# conv2d_transpose stays NCHW: its CPU lowering takes no other layout.
CHANNELS_LAST = {"relax.nn.conv2d": ["NHWC", "HWIO"], "relax.nn.conv2d_transpose": ["NCHW", "IOHW"]}


def trials_for(share: float, trials: int) -> int:
    """Measured candidates for a kernel holding `share` of the model's FLOPs."""
    if share >= HEAVY_SHARE:
        return trials
    if share >= MEDIUM_SHARE:
        return max(trials // 4, min(trials, LIGHT_TRIALS))
    return min(trials, LIGHT_TRIALS)


def tune(mod, target, trials: int, database: str, rpc: dict | None = None, cc: str | None = None):
    """MetaSchedule: tune each fused kernel the database has no record for (trials_for), then apply
    the database. Evolutionary search guided by XGBoost's cost model, candidates built in process
    and run by one worker process shared by all budgets, or with `rpc` ({tracker, key}) on the
    boards of a TVM RPC tracker's key, one worker per board (each candidate linked here with `cc`,
    the target's cross compiler: a board needs no compiler). Records are shared across models and
    runs, so a kernel tuned once is not tuned again for the same target."""
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    started = time.perf_counter()
    fused, layout = channels_last(mod, target)
    tasks = ms.relax_integration.extract_tasks(fused, target)
    db = _best_records_only(database)
    missing = [t for t in tasks if not _has_record(db, t.dispatched[0])] if trials > 0 else []
    flops = {t.task_name: float(estimate_tir_flops(t.dispatched[0])) for t in tasks}
    total = sum(flops.values()) or 1.0
    by_budget: dict[int, list] = {}  # trials per kernel -> the kernels that get that many
    for task in missing:
        by_budget.setdefault(trials_for(flops[task.task_name] / total, trials), []).append(task)
    budgets = sorted(by_budget.items(), reverse=True)
    runner = (_rpc_runner(rpc) if rpc else ms.runner.LocalRunner()) if missing else None  # one for all budgets
    for per_task, group in budgets:
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(group, database, seed=0)
        ms.tune.tune_tasks(tasks=contexts, task_weights=weights, work_dir=database,
                           max_trials_global=per_task * len(group), max_trials_per_task=per_task,
                           num_trials_per_iter=min(32, per_task), builder=_in_process_builder(cc), runner=runner,
                           cost_model="xgb")
    if missing:
        db = _best_records_only(database)
    with target, db:
        fused = relax.transform.MetaScheduleApplyDatabase()(fused)
    return fused, {"layout": layout, "tasks": len(tasks), "tuned_now": len(missing),
                   "kernels_by_trials": {str(k): len(v) for k, v in budgets},
                   "from_database": len(tasks) - len(missing), "trials_budget": trials,
                   "seconds": time.perf_counter() - started, "database": database}


def _rpc_runner(rpc: dict):
    """MetaSchedule's RPC runner over the tracker's boards of the key, a worker per board; the
    candidates' arguments are filled here and copied over (a board with TVM's runtime alone lacks
    the random fill the default runner calls on it)."""
    from tvm import rpc as tvm_rpc
    from tvm.s_tir import meta_schedule as ms

    host, _, port = rpc["tracker"].rpartition(":")
    summary = tvm_rpc.connect_tracker(host, int(port)).summary()
    boards = [s for s in summary.get("server_info", []) if s.get("key", "").split(":")[-1] == rpc["key"]]
    if not boards:
        raise RuntimeError(f"no board of key '{rpc['key']}' registered with the tracker {rpc['tracker']}")
    config = ms.runner.RPCConfig(tracker_host=host, tracker_port=int(port), tracker_key=rpc["key"],
                                 session_priority=1, session_timeout_sec=600)
    return ms.runner.RPCRunner(config, max_workers=len(boards), f_alloc_argument=fill_from_client)


def fill_from_client(session, device, args_info, alloc_repeat):
    """The RPC runner's arguments, random data made here and copied to the board."""
    import numpy as np
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common

    rng = np.random.default_rng(0)

    def fill(tensor) -> None:
        tensor.copyfrom(rng.uniform(-1, 1, size=tuple(tensor.shape)).astype(tensor.dtype))

    return alloc_argument_common(fill, device, args_info, alloc_repeat)


def channels_last(mod, target):
    """The module with its convolutions in CHANNELS_LAST, fused (tuning tasks come from the fused
    module), and the layout used. A model whose converted form TVM cannot lower (an operator with no
    channels-last lowering that inherits the layout) is tuned as it came, and the summary says why."""
    from tvm import relax

    with target:
        try:
            return relax.get_pipeline("zero")(relax.transform.ConvertLayout(CHANNELS_LAST)(mod)), "NHWC"
        except Exception as exc:  # TVM raises its own error types from the converter and the lowering
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            return relax.get_pipeline("zero")(mod), f"NCHW (channels-last failed: {reason[:200]})"


_WORKLOADS, _RECORDS = "database_workload.json", "database_tuning_record.json"


def _best_records_only(database: str):
    """The tuning database, rewritten first to hold only the best record per kernel if it holds
    more. MetaSchedule keeps every measured candidate and parses them all on every load (22 s for
    the 3,000 records of four models here, 0.7 s for their 85 best), and edgepart never tunes a
    recorded kernel again, so the other candidates are dead weight."""
    from tvm.s_tir import meta_schedule as ms

    folder = Path(database)
    workloads, records = (_line_count(folder / name) for name in (_WORKLOADS, _RECORDS))
    if records > workloads:
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            ms.database.JSONDatabase(work_dir=database).dump_pruned(ms.database.JSONDatabase(work_dir=tmp))
            # Records name their workload by line number, so the two files are swapped back to back;
            # a compile reading the same database at that instant could see them mismatched.
            for name in (_WORKLOADS, _RECORDS):
                os.replace(Path(tmp) / name, folder / name)
    return ms.database.JSONDatabase(work_dir=database)


def _line_count(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as lines:
        return sum(1 for _ in lines)


def _in_process_builder(cc: str | None):
    """Build candidates in this process. MetaSchedule's LocalBuilder hands each candidate to a pool
    of worker processes, and on this TVM a worker spends 30-45 s on a kernel that builds here in
    0.3 s, so its 30 s timeout fails whole rounds (measured on the digits CNN's kernels). Each is
    exported as a shared library linked here (`cc`: the cross compiler), not as MetaSchedule's
    default tar of objects, which the board would have to link with a compiler of its own."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder, local_builder

    linker = _linker(cc)

    def export(built) -> str:
        path = os.path.join(tempfile.mkdtemp(prefix="edgepart-candidate-"), "candidate.so")
        built.export_library(path, **linker)
        return path

    @derived_object
    class InProcessBuilder(PyBuilder):
        def build(self, build_inputs):
            results = []
            for item in build_inputs:
                try:
                    built = local_builder.default_build(item.mod, item.target, item.params)
                    results.append(BuilderResult(export(built), None))
                except Exception as exc:  # a candidate TVM cannot build is a failed trial, not a failed tune
                    results.append(BuilderResult(None, f"{type(exc).__name__}: {exc}"))
            return results

    return InProcessBuilder()


def _has_record(db, mod) -> bool:
    return db.has_workload(mod) and len(db.get_top_k(db.commit_workload(mod), 1)) > 0


def runtime_functions(executable) -> list[str]:
    """The global functions of TVM's registry the library's VM calls (its own kernels are not in the
    registry): TVM's runtime must provide them where the tier runs. relax.run.nonzero, say, is
    registered by TVM's compiler library, not its runtime: a library calling it builds, then fails
    to load on a device. (Read from the registry, not the library: a cross-compiled library cannot
    be asked what it defines.)"""
    import tvm

    called = re.findall(r"^@(\S+) packed_func;", executable.as_text(), re.M)
    return sorted({name for name in called if tvm.get_global_func(name, allow_missing=True) is not None})


def _device_module_kinds(executable) -> list[str]:
    kinds = []
    for host in executable.mod.imports:
        kinds.extend(m.kind for m in host.imports)
    return sorted(set(kinds))


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(compile_onnx(spec)))


if __name__ == "__main__":
    main()
