"""verify(build) -> report: run the tier chain, codecs applied at boundaries, and compare the
model's outputs with onnxruntime on the original model.

Each tier runs the way this machine allows: a TVM library for this host's CPU (or a GPU present
here) with TVM's runtime only; an AArch64 library under qemu-user when the emulation bundle is
available; otherwise its ONNX sub-model runs in onnxruntime as a stand-in, and the report says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgepart.compile import manifest
from edgepart.compile.elf import HOST_MACHINE
from edgepart.errors import BadInputError, CheckFailedError
from edgepart.graph import feeds as seeded_feeds
from edgepart.runtime.codecs import roundtrip

# max |tvm - reference| / max |reference| allowed, by the least precise choice in the chain
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "int8": 1e-1}


def verify(build_dir: str | Path, inputs: dict[str, np.ndarray] | None = None, model_path: str | None = None,
           emulators: dict | None = None) -> dict[str, Any]:
    build_dir = Path(build_dir)
    doc = manifest.load(build_dir)
    model = Path(model_path or doc["model"]["path"])
    if not model.is_file():
        raise BadInputError(f"{model}: the original model is missing; pass --model")
    if manifest.sha256(model) != doc["model"]["sha256"] and model_path is None:
        raise BadInputError(f"{model}: sha256 differs from the model this build was made from")
    reference_session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = inputs if inputs is not None else seeded_feeds.for_session(reference_session)
    _check_inputs(feeds, reference_session, model)
    expected = dict(zip([o.name for o in reference_session.get_outputs()], reference_session.run(None, feeds)))
    state: dict[str, np.ndarray] = dict(feeds)
    tiers = []
    worst = "fp32"
    for tier in doc["tiers"]:
        runner = _runner(build_dir, tier, emulators or {})
        values = []
        for spec in tier["inputs"]:
            value = state[spec["name"]]
            for codec in spec.get("codecs", {}).values():
                value = roundtrip(value, codec)
                worst = _least_precise(worst, codec)
            values.append(value)
        outputs = runner.run(values)
        state.update({spec["name"]: out for spec, out in zip(tier["outputs"], outputs)})
        for p in tier["precisions"]:
            worst = _least_precise(worst, p)
        tiers.append({"name": tier["name"], "ran_with": runner.description})
    errors = {}
    for name in doc["outputs"]:
        ref, got = expected[name].astype(np.float64), state[name].astype(np.float64)
        scale = float(np.max(np.abs(ref))) or 1.0
        errors[name] = {"max_abs_error": float(np.max(np.abs(got - ref))),
                        "relative_error": float(np.max(np.abs(got - ref)) / scale)}
    tolerance = TOLERANCE[worst]
    report = {"kind": "edgepart.verify", "build": str(build_dir), "tiers": tiers, "outputs": errors,
              "tolerance": {"relative_error": tolerance, "precision": worst}}
    name, error = max(errors.items(), key=lambda item: item[1]["relative_error"])
    report["passed"] = error["relative_error"] <= tolerance
    if not report["passed"]:
        raise CheckFailedError(f"output '{name}' differs from onnxruntime: relative error "
                               f"{error['relative_error']:.3g} > {tolerance:g} ({worst} tolerance)", report)
    return report


def _check_inputs(feeds: dict[str, np.ndarray], session: ort.InferenceSession, model: Path) -> None:
    """--inputs must name every model input with its shape; the message says which does not."""
    for spec in session.get_inputs():
        if spec.name not in feeds:
            raise BadInputError(f"--inputs: no array named '{spec.name}' (the inputs of {model} are "
                                f"{', '.join(i.name for i in session.get_inputs())})")
        if list(feeds[spec.name].shape) != list(spec.shape):
            raise BadInputError(f"--inputs: '{spec.name}' has shape {list(feeds[spec.name].shape)}, "
                                f"{model} expects {list(spec.shape)}")


def _least_precise(current: str, choice: str) -> str:
    order = ["fp32", "raw", "fp16", "int8"]
    choice = "fp32" if choice == "raw" else choice
    return choice if order.index(choice) > order.index(current) else current


class _OrtRunner:
    def __init__(self, path: Path, why: str) -> None:
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.description = why

    def run(self, values: list[np.ndarray]) -> list[np.ndarray]:
        names = [i.name for i in self.session.get_inputs()]
        return self.session.run(None, dict(zip(names, values)))


class _TvmRunner:
    def __init__(self, path: Path, device: str) -> None:
        from edgepart.runtime.tvm_tier import TvmTier  # noqa: PLC0415 - loads TVM's runtime only

        self.tier = TvmTier(path, device)
        self.description = f"tvm runtime ({device}, this host)"

    def run(self, values: list[np.ndarray]) -> list[np.ndarray]:
        return self.tier.run(values)


def _runner(build_dir: Path, tier: dict, emulators: dict):
    artifact = manifest.artifact_path(build_dir, tier)
    submodel = manifest.artifact_path(build_dir, tier, "submodel")
    if tier["backend"] == "onnxruntime":
        return _OrtRunner(artifact, "onnxruntime (the tier's backend)")
    if tier["runtime_device"] == "cpu" and tier["elf_machine"] == HOST_MACHINE:
        return _TvmRunner(artifact, "cpu")
    if tier["runtime_device"] == "cuda" and _cuda_available():
        return _TvmRunner(artifact, "cuda")
    emulator = emulators.get(tier["elf_machine"]) if tier["runtime_device"] == "cpu" else None
    if emulator is not None:
        return emulator(artifact, tier)
    return _OrtRunner(submodel, f"onnxruntime stand-in: a {tier['target']['preset']} library cannot run here "
                                f"({tier['verification']})")


def _cuda_available() -> bool:
    """An NVIDIA driver that loads and a GPU device node."""
    import ctypes  # noqa: PLC0415

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return Path("/dev/nvidia0").exists()
