"""Before compile ships a tier: does its TVM library load with TVM's runtime alone and compute what
its sub-model computes; does onnxruntime load its sub-model?

TVM builds libraries it cannot run: some call functions only its compiler library registers
(relax.run.nonzero for NonZero), and some operators import with the wrong semantics (LayerNormalization's
Mean and InvStdDev come out as scalars; Expand keeps a size-1 axis). Every TVM library is probed
in a runtime-only process for the functions it calls; one this host runs (x86-64, or CUDA with a
GPU here) also runs once on a sample beside onnxruntime on the same sub-model. A failure
disqualifies the backend: compile builds the tier with the next one the tier allows
(edgepart.compile.build), or stops naming the operator.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import onnx

from edgepart.errors import first_line
from edgepart.graph import feeds, sessions
from edgepart.graph.compare import output_errors
from edgepart.toolchain import compilers, cuda_env, elf
from edgepart.toolchain.compilers import Artifact
from edgepart.toolchain.targets import TargetPreset

# Relative error (max |error| / max |reference|) the library may show against onnxruntime on its
# sub-model, by the least precise precision in the tier: float rounding for fp32; for fp16 and int8
# the two implementations round differently (TVM's int8 is float kernels between quantize and
# dequantize), so the check is for wrong operators, not for rounding.
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "int8": 0.1}
# Runtime functions TVM's compiler library registers and its runtime lacks, by the ONNX operators
# that lower to them, for naming the operator at fault.
FUNCTION_OPERATORS = {"relax.run.nonzero": ("NonZero", "Compress"), "relax.run.unique": ("Unique",),
                      "tvm.contrib.sort.argsort": ("NonMaxSuppression", "ArgSort")}


class Disqualified(Exception):
    """The library cannot ship: it calls what the runtime lacks, fails to run, or computes
    something else than its sub-model. `operators`: the ONNX operators named as the cause."""

    def __init__(self, message: str, operators: list[str]) -> None:
        super().__init__(message)
        self.details = {"operators": operators}


def check(artifact: Artifact, submodel: Path, preset: TargetPreset, precision: str,
          sample: dict[str, np.ndarray] | None) -> dict:
    """The check's record for the manifest; raises Disqualified. A TVM library is probed and, where
    it runs here, compared; an onnxruntime tier is the sub-model itself and only has to load.
    `precision`: the tier's least precise layer; `sample`: the tier's inputs (a calibration
    sample), else seeded ones."""
    if artifact.backend == "onnxruntime":
        return _loads_in_onnxruntime(artifact.path)
    if artifact.backend != "tvm":
        return {"checked": False, "why": f"{artifact.backend} is not checked"}
    if artifact.path.suffix != ".so":
        return {"checked": False, "why": "a source export: nothing to load"}
    graph = onnx.load(str(submodel), load_external_data=False).graph
    runs_here = _runs_here(artifact, preset)
    inputs = sample or feeds.seeded(_specs(graph))
    reference, why_not = _reference(submodel, graph, inputs) if runs_here else (None, None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec = {"library": str(artifact.path), "device": preset.device if runs_here else "cpu",
                "functions": artifact.details.get("runtime_functions", [])}
        if reference is not None:
            np.savez(folder / "in.npz", **{f"input{i}": inputs[v.name] for i, v in enumerate(graph.input)})
            spec.update(inputs=str(folder / "in.npz"), outputs=str(folder / "out.npz"))
        summary = _probe(spec, folder)
        if summary.get("missing"):
            missing = summary["missing"]
            operators = sorted({op for f in missing for op in FUNCTION_OPERATORS.get(f, ())}
                               & {n.op_type for n in graph.node})
            raise Disqualified(f"the library calls {', '.join(missing)}, which TVM's runtime lacks"
                               + (f" (operator {', '.join(operators)})" if operators else ""), operators)
        if "error" in summary:
            raise Disqualified(f"the library fails to run with TVM's runtime: {summary['error']}", [])
        if reference is None:
            why = why_not or f"{preset.name} libraries do not run on this host"
            return {"checked": False, "runtime_functions": "present", "why": why}
        with np.load(folder / "out.npz") as stored:
            outputs = [stored[f"output{i}"] for i in range(len(stored.files))]
    source = "seeded" if sample is None else "a calibration sample"
    return _compared(graph, reference, outputs, TOLERANCE[precision], source)


def _loads_in_onnxruntime(path: Path) -> dict:
    """An onnxruntime tier is the sub-model itself, the reference: it only has to load (onnxruntime
    lacks some operators at some opsets: RoiAlign-22, say)."""
    try:
        sessions.session(str(path))
    except Exception as exc:  # onnxruntime's own error types
        first = first_line(exc, 300)
        missing = re.search(r"implementation for (\w+)\(", first)
        operators = [missing.group(1)] if missing else []
        raise Disqualified(f"onnxruntime cannot load the tier: {first}", operators) from None
    return {"checked": False, "why": "onnxruntime runs the sub-model itself (it loads)"}


def _runs_here(artifact: Artifact, preset: TargetPreset) -> bool:
    if preset.device == "cpu":
        return artifact.details.get("elf_machine") == elf.HOST_MACHINE
    return preset.device == "cuda" and cuda_env.cuda_available()


def _specs(graph: onnx.GraphProto) -> list[tuple[str, list[int], str]]:
    return [(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim],
             np.dtype(onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)).name) for v in graph.input]


def _reference(submodel: Path, graph: onnx.GraphProto, inputs: dict) -> tuple[list | None, str | None]:
    """onnxruntime's outputs on the sub-model, or None and why (made-up inputs can be invalid: an
    input that is a size or an index)."""
    try:
        return sessions.session(str(submodel)).run(None, {v.name: inputs[v.name] for v in graph.input}), None
    except Exception as exc:  # onnxruntime's own error types
        first = first_line(exc, 200)
        return None, f"onnxruntime fails on the check's inputs ({first}); only the runtime functions were checked"


def _probe(spec: dict, folder: Path) -> dict:
    path = folder / "probe.json"
    path.write_text(json.dumps(spec))
    result = compilers.run_tvm_process("edgepart.toolchain.tvm_probe", str(path), runtime_only=True)
    if result.returncode != 0 or not result.stdout.strip():
        return {"error": f"the runtime crashed loading or running it ({compilers.last_error(result.stderr)})"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _compared(graph: onnx.GraphProto, reference: list, outputs: list, tolerance: float, inputs: str) -> dict:
    names = [v.name for v in graph.output]
    if len(outputs) != len(names):
        raise Disqualified(f"the library returns {len(outputs)} outputs, the sub-model {len(names)}", [])
    errors = output_errors(names, [dict(zip(names, reference))], [dict(zip(names, outputs))])
    for name, error in errors.items():
        problem = error.get("problem") or (f"relative error {error['relative_error']:.3g} > {tolerance:g}"
                                           if error["relative_error"] > tolerance else None)
        if problem:
            producers = sorted({n.op_type for n in graph.node if name in n.output})
            made_by = f" (made by operator {', '.join(producers)})" if producers else ""
            raise Disqualified(f"output '{name}'{made_by} differs from onnxruntime on the sub-model: {problem}",
                               producers)
    worst = max((e["relative_error"] for e in errors.values()), default=0.0)
    return {"checked": True, "inputs": inputs, "relative_error": worst, "tolerance": tolerance}
