"""Named compile targets: what TVM is told, how the library is linked, and how far it is checked here.

A deploy.toml names a preset (`target = "aarch64"`) or gives a raw TVM target dict. Each preset
says which ELF machine the library must have and what can be done with it on this build host:
`run` (loaded and compared here), `emulate` (run under qemu-user), `check` (device code inspected),
or `generate` (code generated and packaged; needs a TVM runtime built with that backend).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgepart.errors import BadInputError

X86_HOST = {"kind": "llvm", "mcpu": "x86-64"}
AARCH64_HOST = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}


@dataclass(frozen=True)
class TargetPreset:
    """A compile target. `target` and `host` are TVM target dicts; `cc` links the shared library."""

    name: str
    target: dict[str, Any]
    host: dict[str, Any] | None = None
    cc: str = "g++"
    elf_machine: str = "x86-64"
    verification: str = "run"  # run | emulate | check | generate
    device: str = "cpu"  # the TVM device the artifact runs on: cpu, cuda, opencl, metal, webgpu
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_gpu(self) -> bool:
        return self.device != "cpu"


def _cuda(arch: str, label: str) -> TargetPreset:
    return TargetPreset(
        f"cuda-{arch.replace('_', '')}", {"kind": "cuda", "arch": arch}, X86_HOST, device="cuda",
        verification="check", notes=f"NVIDIA {label}; the library embeds a fatbin for {arch}",
    )


_PRESETS = [
    TargetPreset("x86-64", {"kind": "llvm", "mcpu": "x86-64"}, notes="any x86-64 CPU (SSE2 baseline)"),
    TargetPreset("x86-64-v3", {"kind": "llvm", "mcpu": "haswell"}, notes="x86-64 with AVX2 and FMA"),
    # prefer-no-gather: for AVX-512 CPUs LLVM vectorises TVM's untuned elementwise loops across their
    # outer loop with gathers, 8x slower than the plain contiguous loop (hardswish [1,240,14,14]:
    # 175 us against 23 us; MobileNetV3-Small 2.9x onnxruntime's time against 2.0x).
    TargetPreset("x86-64-v4", {"kind": "llvm", "mcpu": "skylake-avx512", "mattr": ["+prefer-no-gather"]},
                 notes="x86-64 with AVX-512"),
    TargetPreset("aarch64", dict(AARCH64_HOST), cc="aarch64-linux-gnu-g++", elf_machine="AArch64",
                 verification="emulate", notes="64-bit Arm Linux (NEON)"),
    TargetPreset("rpi4", {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a72",
                          "mattr": ["+neon"]}, cc="aarch64-linux-gnu-g++", elf_machine="AArch64",
                 verification="emulate", notes="Raspberry Pi 4B, Cortex-A72, 64-bit OS"),
    TargetPreset("armv7", {"kind": "llvm", "mtriple": "armv7a-linux-gnueabihf", "mattr": ["+neon", "+vfp4"],
                           "mfloat-abi": "hard"}, cc="arm-linux-gnueabihf-g++", elf_machine="ARM",
                 verification="check", notes="32-bit Arm hard-float; no armv7 TVM runtime wheel exists to run it here"),
    _cuda("sm_70", "Volta (V100)"),
    _cuda("sm_75", "Turing (T4)"),
    _cuda("sm_80", "Ampere (A100)"),
    _cuda("sm_86", "Ampere (RTX 30xx, A10)"),
    _cuda("sm_89", "Ada (L4, RTX 40xx)"),
    _cuda("sm_90", "Hopper (H100, H200)"),
    TargetPreset("jetson-nano", {"kind": "cuda", "arch": "sm_53"}, dict(AARCH64_HOST), cc="aarch64-linux-gnu-g++",
                 elf_machine="AArch64", device="cuda", verification="check",
                 notes="Jetson Nano (Maxwell sm_53) with its aarch64 host; needs a CUDA toolkit of version 12 "
                       "or older (CUDA 13 dropped sm_53): set CUDA_PATH"),
    TargetPreset("jetson-orin", {"kind": "cuda", "arch": "sm_87"}, dict(AARCH64_HOST), cc="aarch64-linux-gnu-g++",
                 elf_machine="AArch64", device="cuda", verification="check",
                 notes="Jetson Orin (sm_87) with its aarch64 host"),
    TargetPreset("opencl-mali", {"kind": "opencl", "device": "mali"}, dict(AARCH64_HOST), cc="aarch64-linux-gnu-g++",
                 elf_machine="AArch64", device="opencl", verification="generate",
                 notes="Arm Mali GPU; needs a TVM runtime built with USE_OPENCL=ON"),
    TargetPreset("opencl-adreno", {"kind": "opencl", "device": "adreno"}, dict(AARCH64_HOST),
                 cc="aarch64-linux-gnu-g++", elf_machine="AArch64", device="opencl", verification="generate",
                 notes="Qualcomm Adreno GPU; needs a TVM runtime built with USE_OPENCL=ON"),
    TargetPreset("metal", {"kind": "metal"}, {"kind": "llvm", "mtriple": "arm64-apple-macos"}, cc="",
                 elf_machine="", device="metal", verification="generate",
                 notes="Apple GPU; Metal source only (linking needs macOS)"),
    TargetPreset("webgpu", {"kind": "webgpu"}, X86_HOST, cc="", elf_machine="", device="webgpu",
                 verification="generate",
                 notes="WebGPU; WGSL source only, needs TVM's web runtime"),
]

PRESETS: dict[str, TargetPreset] = {p.name: p for p in _PRESETS}


def resolve(spec: str | dict[str, Any], where: str = "target") -> TargetPreset:
    """A preset by name, or a preset made from a raw TVM target dict (`{"kind": "llvm", ...}`)."""
    if isinstance(spec, dict):
        kind = spec.get("kind")
        if kind not in ("llvm", "cuda", "opencl", "metal", "webgpu", "c"):
            raise BadInputError(f"{where}: raw TVM target needs a known 'kind', got {kind!r}")
        device = "cpu" if kind in ("llvm", "c") else kind
        return TargetPreset(f"raw-{kind}", dict(spec), X86_HOST if device != "cpu" else None, device=device,
                            verification="run" if device == "cpu" else "check", notes="raw TVM target")
    if spec not in PRESETS:
        raise BadInputError(f"{where}: unknown target '{spec}'; presets: {', '.join(PRESETS)}")
    return PRESETS[spec]
