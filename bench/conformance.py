"""The ONNX backend node tests through edgepart's whole chain, one case at a time.

onnx ships the generators of its node tests (onnx.backend.test.case.node), not their data: the
cases are generated here, in memory. A case is applicable when every node is in the default domain,
every graph input and output is a float32, int64 or bool tensor (what a tier carries), and it has
an input. Each goes
through `inspect -> plan -> compile -> verify` (edgepart.api) on a one-tier x86-64 deployment whose
tier may use the backends given, with the case's own inputs; verify holds the chain to onnxruntime
on the same model, and the chain's outputs are then held to the case's expected outputs too.

Used by bench/bench_conformance.py (the table per operator) and the slow test of the same.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

CARRIED = {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.BOOL}
# The tier's allowed backends per mode; "tvm-first" allows both and ships TVM where it can (the
# plan edited to choose it, as a plan does for a model TVM runs faster), so every fallback shows.
BACKEND_SETS = {"tvm": ("tvm",), "onnxruntime": ("onnxruntime",), "both": ("tvm", "onnxruntime"),
                "tvm-first": ("tvm", "onnxruntime")}
EXIT_CODES = {"BadInputError": 2, "CheckFailedError": 1, "ToolError": 3}


@dataclass
class Outcome:
    """One case through the chain: `stage` where it stopped (None when it passed), the error's
    class (an edgepart error, or anything else: a crash) and first line, the backend compile
    shipped, and whether the chain's outputs match the case's expected outputs."""

    case: str
    operator: str
    backends: str
    stage: str | None = None
    error: str | None = None
    message: str | None = None
    shipped: str | None = None
    matches_expected: bool | None = None

    @property
    def passed(self) -> bool:
        return self.stage is None and bool(self.matches_expected)

    @property
    def crashed(self) -> bool:
        """An error that is not one of edgepart's own (a traceback for the user)."""
        return self.error is not None and self.error not in EXIT_CODES


def applicable_cases() -> list:
    """Every node test whose graph carries only CARRIED tensors in the default domain, by name."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the generators overflow casts on purpose
        from onnx.backend.test.case.node import collect_testcases  # noqa: PLC0415

        cases = collect_testcases()
    return sorted((c for c in cases if _applicable(c.model)), key=lambda c: c.name)


def _applicable(model: onnx.ModelProto) -> bool:
    """Default domain, CARRIED tensors, and at least one input (a model of constants has nothing to
    run or split: inspect refuses it)."""
    if any(node.domain not in ("", "ai.onnx") for node in model.graph.node):
        return False
    if not {i.name for i in model.graph.input} - {init.name for init in model.graph.initializer}:
        return False
    values = [*model.graph.input, *model.graph.output]
    return all(v.type.HasField("tensor_type") and v.type.tensor_type.elem_type in CARRIED for v in values)


def operator(case) -> str:
    """The operator a node test is about: for a function expanded into nodes, the function's name
    (its nodes are named "<Op>_test_..."); else its one node's op type, Constant nodes aside."""
    nodes = case.model.graph.node
    expanded = next((n.name.split("_test_")[0] for n in nodes if "_test_" in n.name), None)
    if expanded:
        return expanded
    ops = [n.op_type for n in nodes if n.op_type != "Constant"] or [nodes[0].op_type]
    return max(set(ops), key=ops.count)


def onnxruntime_passes(case) -> bool:
    """Whether onnxruntime, on the case's model as it is, gives the expected outputs."""
    import onnxruntime as ort  # noqa: PLC0415

    inputs, expected = case.data_sets[0]
    try:
        session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {i.name: np.asarray(v) for i, v in zip(case.model.graph.input, inputs)}
        got = session.run(None, feeds)
    except Exception:  # onnxruntime's own error types: it does not take the case
        return False
    return _match(got, expected, case)


def run_case(case, backends: str, folder: Path) -> Outcome:
    """The case through the chain in `folder` (created) with the tier allowed BACKEND_SETS[backends]."""
    from edgepart import api  # noqa: PLC0415
    from edgepart.compile.manifest import Manifest  # noqa: PLC0415
    from edgepart.runtime.verify import Chain  # noqa: PLC0415

    outcome = Outcome(case.name, operator(case), backends)
    folder.mkdir(parents=True, exist_ok=True)
    model_path, inputs_path, deploy_path = folder / "model.onnx", folder / "inputs.npz", folder / "deploy.toml"
    inputs, expected = case.data_sets[0]
    onnx.save(case.model, model_path)
    np.savez(inputs_path, **{i.name: np.asarray(v)[None] for i, v in zip(case.model.graph.input, inputs)})
    allowed = ", ".join(f'"{b}"' for b in BACKEND_SETS[backends])
    deploy_path.write_text(f'[[tier]]\nname = "host"\ndevice = "local"\ntarget = "x86-64"\nbackends = [{allowed}]\n')
    stage = "inspect"
    try:
        loaded = api.load_model(model_path)
        stage = "plan"
        plan = api.plan(loaded, deploy_path)
        if backends == "tvm-first":
            deployment = plan.doc["deployment"]
            plan = {**plan.doc, "deployment": {**deployment, "tiers": [{**t, "backend": "tvm"}
                                                                        for t in deployment["tiers"]]}}
        stage = "compile"
        # the case's inputs are the sample compile checks TVM's library on (made-up ones can be
        # invalid sizes or indices); calibration data may not hold NaN
        finite = not any(np.isnan(np.asarray(v)).any() for v in inputs if np.asarray(v).dtype.kind == "f")
        built = api.compile(loaded, plan, folder / "build", calibration=inputs_path if finite else None)
        outcome.shipped = built.tiers[0].backend
        stage = "verify"
        api.verify(folder / "build", inputs=inputs_path)
        stage = "expected"
        chain = Chain(Manifest.load(folder / "build"), {})
        feeds = {i.name: np.asarray(v) for i, v in zip(case.model.graph.input, inputs)}
        got = chain.run_many([feeds])[0]
        outcome.matches_expected = _match([got[o.name] for o in case.model.graph.output], expected, case)
        if not outcome.matches_expected:
            outcome.stage, outcome.message = "expected", "the chain's outputs differ from the case's expected outputs"
    except Exception as exc:  # noqa: BLE001 - the outcome records every failure, crashes included
        outcome.stage, outcome.error = stage, type(exc).__name__
        outcome.message = (str(exc).strip().splitlines() or [""])[0][:300]
    return outcome


def run_cases(cases: list, backends: str, work: Path | None = None) -> list[Outcome]:
    """Every case through the chain, each in a folder of its own under `work` (a temporary one)."""
    logging.getLogger("edgepart").setLevel(logging.ERROR)  # plans of one-node models warn of little
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        return [run_case(case, backends, Path(tmp) / case.name) for case in cases]


def _match(got: list, expected: list, case) -> bool:
    if len(got) != len(expected):
        return False
    for g, e in zip(got, expected):
        g, e = np.asarray(g), np.asarray(e)
        if g.shape != e.shape:
            return False
        if e.dtype.kind in "fc":
            if not np.allclose(g.astype(np.float64), e.astype(np.float64), rtol=max(case.rtol, 1e-4),
                               atol=max(case.atol, 1e-6), equal_nan=True):
                return False
        elif not np.array_equal(g, e):
            return False
    return True
