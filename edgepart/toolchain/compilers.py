"""Tier compilers behind one interface, found by name: TVM (Relax) and onnxruntime (fallback).

`compile(submodel, tier, out_dir) -> Artifact`. TVM builds run in their own process
(edgepart.toolchain.tvm_worker) with the environment the target needs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgepart.cache import cache_dir
from edgepart.children import die_with_parent
from edgepart.errors import BadInputError, ToolError
from edgepart.toolchain import cuda_env, elf, kernel_library, packing
from edgepart.toolchain.targets import TargetPreset

log = logging.getLogger(__name__)


@dataclass
class Artifact:
    path: Path
    backend: str
    details: dict = field(default_factory=dict)


def io_types(model: onnx.ModelProto) -> tuple[dict[str, list[int]], dict[str, str]]:
    shapes, dtypes = {}, {}
    for vi in model.graph.input:
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        dtypes[vi.name] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)).name
    return shapes, dtypes


class TvmCompiler:
    """`kernels`: CPU tiers call edgepart's kernel library (OpenBLAS) for their convolutions and
    matrix products where it is installed for the target (edgepart.toolchain.offload); False builds
    every kernel with TVM, untuned unless `tune_trials` (bench_tvm_vs_ort's before column)."""

    name = "tvm"

    def __init__(self, tune_trials: int = 0, tuning_db: Path | None = None, kernels: bool = True,
                 tracker: str | None = None, key: str | None = None, on: tuple[str, ...] = ()) -> None:
        """`tracker` and `key`: MetaSchedule measures the candidates of the tiers named by `on` (default:
        the CPU tiers this host cannot run) on the boards of that key behind a TVM RPC tracker
        (edgepart.profile.farm), as many at once as the key has boards; the other tiers' here."""
        self.tune_trials, self.tuning_db, self.kernels = tune_trials, tuning_db, kernels
        self.tracker, self.key, self.on = tracker, key, on

    def for_tier(self, name: str, preset: TargetPreset) -> TvmCompiler:
        """The compiler of tier `name`: this one where the tier is tuned on the farm, else one that
        tunes here (or, for a target this host cannot run, leaves the tier untuned)."""
        if not self.tracker or (name in self.on if self.on else preset.elf_machine != elf.HOST_MACHINE):
            return self
        return TvmCompiler(self.tune_trials, self.tuning_db, self.kernels)

    def compile(self, submodel: Path, preset: TargetPreset, out_dir: Path, stem: str) -> Artifact:
        source_only = preset.verification == "generate" and not preset.cc
        suffix = {"metal": ".metal", "webgpu": ".wgsl"}.get(preset.device, ".src") if source_only else ".so"
        out = out_dir / f"{stem}{suffix}"
        if preset.cc and not source_only and shutil.which(preset.cc) is None:
            raise ToolError(f"target '{preset.name}' links with {preset.cc}, which is not installed "
                            "(Debian: g++-aarch64-linux-gnu / g++-arm-linux-gnueabihf; `make system-deps`)")
        shapes, dtypes = io_types(onnx.load(str(submodel), load_external_data=False))
        spec = {"onnx": str(submodel), "out": str(out), "target": preset.target, "host": preset.host,
                "device": preset.device, "cc": preset.cc if preset.cc != "g++" else None,
                "input_shapes": shapes, "input_dtypes": dtypes, "export": "source" if source_only else "library"}
        if preset.device == "cpu":
            spec["kernels"] = self.kernel_spec(preset.elf_machine, out_dir.name, packing.has_avx512(preset.target))
        if self.tune_trials and _tunable(preset, on_farm=self.tracker is not None):
            database = tuning_database(preset, self.tuning_db)
            spec["tune"] = {"trials": self.tune_trials, "database": str(database),
                            "rpc": {"tracker": self.tracker, "key": self.key} if self.tracker else None}
            spec["target"] = {**preset.target, "num-cores": 1}  # tuned for the one thread tiers run with
        spec_path = out_dir / f".{stem}.spec.json"
        spec_path.write_text(json.dumps(spec))
        result = run_tvm_process("edgepart.toolchain.tvm_worker", str(spec_path), cuda=preset.device == "cuda")
        spec_path.unlink()
        if result.returncode != 0:
            operators = import_failure(result.stdout, result.stderr, submodel)
            cause = (f"TVM cannot import operator{'s' if len(operators) > 1 else ''} {', '.join(operators)}: "
                     if operators else "")
            raise ToolError(f"TVM failed to compile tier '{out_dir.name}' for {preset.name}: {cause}"
                            f"{first_error(result.stderr)}",
                            {"compiler_output": result.stdout + result.stderr, "operators": operators})
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        data = out.read_bytes()
        summary["elf_machine"] = elf.machine(out)
        if preset.device == "cuda":
            summary["device_code"] = "fatbin" if cuda_env.FATBIN_MAGIC in data else (
                "cuda-source" if b"__global__" in data else "none")
        return Artifact(out, self.name, summary)

    def kernel_spec(self, elf_machine: str, tier: str, packed: bool = False) -> dict:
        """The worker's `kernels` spec for a CPU target of this ELF machine: the library to link, or
        None and why (recorded in the manifest; the TVM profiler times its per-layer kernels with the
        same); `packed`: convolutions with constant weights run on native/gemm.c with weights packed
        at compile time (AVX-512 targets, edgepart.toolchain.packing). A library that should be there
        and is not costs a warning: the tier still builds, its convolutions as TVM's loops, tens of
        times slower untuned."""
        if not self.kernels:
            return {"library": None, "reason": "TVM kernels asked for"}
        library, reason = kernel_library.find(elf_machine)
        if library is None and elf_machine in kernel_library.ARCHES:
            log.warning("tier '%s': %s; its convolutions and matrix products get TVM's own kernels (slow untuned)",
                        tier, reason)
        return {"library": library.to_spec() if library else None, "reason": reason, "packed": packed}


class OnnxRuntimeCompiler:
    """Fallback: the tier runs its ONNX sub-model with onnxruntime on the device."""

    name = "onnxruntime"

    def compile(self, submodel: Path, preset: TargetPreset, out_dir: Path, stem: str) -> Artifact:
        out = out_dir / f"{stem}.onnx"
        shutil.copyfile(submodel, out)
        return Artifact(out, self.name, {"note": "runs with onnxruntime on the device"})


class ByocCompiler:
    """TVM BYOC backends: TVM partitions the tier for them here, but the wheel has none of their
    code generators, so compiling fails with the coverage the backend would have had."""

    def __init__(self, name: str) -> None:
        self.name = name

    def compile(self, submodel: Path, preset: TargetPreset, out_dir: Path, stem: str) -> Artifact:
        coverage = byoc_coverage(submodel)
        taken = coverage["backends"][self.name].get("operator_calls", 0)
        taken = f"{taken} of {coverage['operator_calls']} operator calls"
        raise BadInputError(f"tier '{out_dir.name}': backend '{self.name}' has no code generator in this TVM build "
                            f"(apache-tvm wheel); it would take {taken}; use backend tvm, onnxruntime or auto")


def byoc_coverage(submodel: Path) -> dict:
    """What each BYOC backend's partitioner takes from a sub-model (edgepart.toolchain.byoc_worker)."""
    result = run_tvm_process("edgepart.toolchain.byoc_worker", str(submodel))
    if result.returncode != 0:
        raise ToolError(f"TVM could not partition {submodel}: {last_error(result.stderr)}")
    return json.loads(result.stdout.strip().splitlines()[-1])


COMPILERS = {"tvm": TvmCompiler(), "onnxruntime": OnnxRuntimeCompiler(),
             **{name: ByocCompiler(name) for name in ("tensorrt", "nnapi", "cublas", "cudnn", "cutlass")}}


def run_tvm_process(module: str, argument: str, cuda: bool = False,
                    runtime_only: bool = False) -> subprocess.CompletedProcess:
    """A process with the whole of TVM (never runtime-only, even if the user's shell asks for it)
    or, `runtime_only`, with TVM's runtime alone as a device has it; the CUDA build environment when
    needed; a process that dies with edgepart."""
    env = cuda_env.build_env() if cuda else dict(os.environ)
    env.pop("TVM_USE_RUNTIME_LIB", None)
    if runtime_only:
        env["TVM_USE_RUNTIME_LIB"] = "1"
    return subprocess.run([sys.executable, "-m", module, argument], capture_output=True, text=True, env=env,
                          preexec_fn=die_with_parent)


def _tunable(preset: TargetPreset, on_farm: bool) -> bool:
    """MetaSchedule measures candidates by running them: CPU targets this host runs, or any CPU
    target whose candidates a farm's boards run (linked here with the target's cross compiler)."""
    return preset.device == "cpu" and (on_farm or preset.elf_machine == elf.HOST_MACHINE)


def tuning_database(preset: TargetPreset, folder: Path | None = None) -> Path:
    """One MetaSchedule database per target, shared by every model and run."""
    key = hashlib.sha256(json.dumps(preset.target, sort_keys=True).encode()).hexdigest()[:12]
    path = (folder or cache_dir() / "tuning") / f"{preset.name}-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def compiler(name: str):
    if name not in COMPILERS:
        raise BadInputError(f"unknown backend '{name}'; known: {', '.join(COMPILERS)}")
    return COMPILERS[name]


# A compiler's or linker's own error line: nvcc's "kernels.cu(12): error: ...", gcc's
# "f.c:3:5: error: ...", "nvcc fatal : ...", "collect2: error: ...", ld's "undefined reference".
COMPILER_ERROR = re.compile(r"(\(\d+\)|:\d+(:\d+)?):\s*(fatal )?error\b|\bnvcc fatal\b|^(collect2|ld|/\S*ld): .*error"
                            r"|undefined reference to")


def import_failure(stdout: str, stderr: str, submodel: Path) -> list[str]:
    """The ONNX operators TVM's importer could not take, from what it printed: the operators it has
    no converter for, the one whose converter raised ("Error converting operator X"), or the node
    whose inputs it could not handle ("Node N cannot handle ...")."""
    missing = re.search(r"not supported for frontend ONNX: ([\w, ]+)", stderr)
    if missing:
        return sorted(name.strip() for name in missing.group(1).split(",") if name.strip())
    raised = re.search(r"Error converting operator (\w+)", stdout + stderr)
    if raised:
        return [raised.group(1)]
    node = re.search(r"Node (\S+) cannot handle", stderr)
    if node:
        graph = onnx.load(str(submodel), load_external_data=False).graph
        return sorted({n.op_type for n in graph.node if n.name == node.group(1)})
    return []


def first_error(stderr: str) -> str:
    """The first line a compiler or linker (nvcc, gcc, ld) gave as an error, where one did (the
    first error is the cause; later ones often follow from it); else last_error."""
    for line in stderr.splitlines():
        if COMPILER_ERROR.search(line.strip()):
            return line.strip()[:400]
    return last_error(stderr)


def last_error(stderr: str) -> str:
    """The line of a failed tool's output that says why: a fatal one (nvcc's "Unsupported gpu
    architecture" follows TVM's bare "Compilation error:"), else the last error, else the last line."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    fatal = [line for line in lines if "fatal" in line.lower()]
    errors = [line for line in lines if "error" in line.lower()]
    return (fatal or errors or lines or ["no output"])[-1][:400]
