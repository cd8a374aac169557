"""Backends a tier can ship, and what each costs relative to onnxruntime where it was not measured.

`supported(preset)`: every backend a compile target can be built for (onnxruntime only where an
onnxruntime build exists for the target's CPU: x86-64 and aarch64). `factor(backend, kind)`: the
measured ratio of a backend's time to onnxruntime's on one device kind, from the shipped, sourced
calibration file edgepart/profiles/backends.json (docs/solvers.md states the error it carries).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from edgepart import checks, schema
from edgepart.errors import BadInputError
from edgepart.hardware.devices import profiles_dir
from edgepart.toolchain.targets import TargetPreset

SCHEMA_VERSION = 1
BUILT = ("tvm", "onnxruntime")  # backends compile builds
BYOC = ("tensorrt", "nnapi", "cublas", "cudnn", "cutlass")  # accepted; compile reports their coverage and stops
KNOWN = (*BUILT, *BYOC)
ONNXRUNTIME_CPUS = ("x86-64", "AArch64")  # ELF machines of the CPUs onnxruntime ships builds for
# Backends whose int8 layers run integer kernels. TVM imports a QDQ model as quantize/dequantize
# around float kernels (fake quantisation): its int8 layers are never faster than fp32, so where they
# were not measured they are priced at the fp32 time (edgepart.cost.build), not at a device's int8 rate.
INTEGER_KERNELS = ("onnxruntime",)


@dataclass(frozen=True)
class Factor:
    """A backend's time over onnxruntime's on a device kind; `spread` (lowest, highest) over the
    models it was measured on, None when nothing was measured."""

    ratio: float
    spread: tuple[float, float] | None
    source: str


def supported(preset: TargetPreset) -> tuple[str, ...]:
    """The backends compile can build for a target, in the order a tie between them is broken."""
    if preset.device == "cpu" and preset.elf_machine in ONNXRUNTIME_CPUS:
        return BUILT
    return ("tvm",)


def threads(backend: str, tier_threads: int) -> int:
    """The threads a tier's layers run with: onnxruntime uses the tier's `threads` (its intra-op
    threads); TVM's kernels, and the kernel library they call, run single-threaded."""
    return tier_threads if backend == "onnxruntime" else 1


@functools.cache
def _tvm_operators() -> frozenset[str]:
    doc = schema.load_json(profiles_dir() / "tvm_operators.json", "tvm_operators", 1)
    return frozenset(checks.texts(doc.get("operators"), "tvm_operators.json: operators"))


def takes(backend: str, op_type: str) -> bool:
    """Whether `backend` can take a layer of this ONNX operator at all: TVM's importer has no
    converter for some (DFT, LSTM, LpNormalization, onnxruntime's QLinearConv), listed in the shipped
    edgepart/profiles/tvm_operators.json. The plan keeps such layers off TVM tiers; what TVM imports
    but gets wrong, compile's check finds (edgepart.compile.tier_check)."""
    return backend != "tvm" or op_type in _tvm_operators()


def factor(backend: str, device_kind: str) -> Factor:
    """The calibration of `backend` on a device of `device_kind` (cpu, gpu, accelerator)."""
    path = profiles_dir() / "backends.json"
    doc = schema.load_json(path, "backends", SCHEMA_VERSION)
    entry = doc["backends"].get(backend, {}).get(device_kind)
    if entry is None:
        return Factor(1.0, None, f"not calibrated: no measurement of {backend} on a {device_kind}; the device "
                                 "profile's prediction is used as it is")
    try:
        spread = tuple(float(x) for x in entry["range"]) if entry.get("range") else None
        return Factor(float(entry["ratio"]), spread, str(entry["source"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"{path}: backends.{backend}.{device_kind}: invalid ({exc})") from None
