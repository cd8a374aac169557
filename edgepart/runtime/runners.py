"""How this machine runs a tier of a build: its own library (TVM's runtime, here or on this host's
GPU), an emulator, or its sub-model in onnxruntime as a stand-in. verify, run's tiers and compile's
timing all go through `runner_for`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgepart.compile import manifest
from edgepart.compile.manifest import BuiltTier
from edgepart.errors import BadInputError, first_line
from edgepart.graph import sessions
from edgepart.toolchain import elf
from edgepart.toolchain.cuda_env import cuda_available
from edgepart.toolchain.elf import HOST_MACHINE
from edgepart.wording import with_article


class OrtRunner:
    def __init__(self, path: Path, why: str, native: bool, threads: int = 1) -> None:
        """`threads`: intra-op threads, as the plan priced the tier (at most this host's CPUs)."""
        from edgepart.graph.sessions import ort_options  # noqa: PLC0415

        options = ort_options()
        options.intra_op_num_threads = max(1, min(threads, os.cpu_count() or 1))
        self.session = sessions.session(path, options)
        self.description = why
        self.native = native  # False: a stand-in for an artifact that cannot run here

    def run(self, values: list[np.ndarray]) -> list[np.ndarray]:
        names = [i.name for i in self.session.get_inputs()]
        return self.session.run(None, dict(zip(names, values)))


class TvmRunner:
    def __init__(self, path: Path, device: str) -> None:
        from edgepart.toolchain.tvm_tier import TvmTier  # noqa: PLC0415 - loads TVM's runtime only

        self.tier = TvmTier(path, device)
        self.description = f"tvm runtime ({device}, this host)"
        self.native = True

    def run(self, values: list[np.ndarray]) -> list[np.ndarray]:
        return self.tier.run(values)


class BoardRunner:
    """A TVM tier's library on a board of a farm (edgepart.profile.farm): the tier's own artifact on
    the hardware the user says the tier is for, timed there by TVM's time_evaluator."""

    def __init__(self, path: Path, device: str, board, key: str) -> None:
        from edgepart.toolchain.tvm_tier import TvmTier  # noqa: PLC0415 - loads TVM's runtime only

        self.tier = TvmTier(path, device, session=board.session)
        self.board = board.address
        self.description = f"tvm runtime on board {board.address} (key {key})"
        self.native = True

    def run(self, values: list[np.ndarray]) -> list[np.ndarray]:
        return self.tier.run(values)

    def timed(self, values: list[np.ndarray], gap_s: float, repeat: int) -> list[float]:
        """Seconds of single runs on the board, each after the board idled `gap_s` (as a price assumes)."""
        return self.tier.time_after_idle(values, gap_s, repeat)


def runner_for(build_dir: Path, tier: BuiltTier, emulators: dict | None = None, boards: dict | None = None):
    """The way this machine runs a tier: its library, a farm board (`boards`: tier name -> a factory of
    a runner for the library, verify --tracker), an emulator, or its sub-model in onnxruntime.
    A runner has `run`, `description` (how it runs, for reports) and `native` (False for an emulator or
    a stand-in: the tier's own artifact does not run at its own speed here)."""
    emulators = emulators or {}
    artifact = manifest.artifact_path(build_dir, tier)
    submodel = manifest.checked_submodel(build_dir, tier)
    if tier.backend == "onnxruntime":
        return _loaded(lambda: OrtRunner(artifact, "onnxruntime (the tier's backend)", native=True,
                                         threads=tier.threads), artifact, tier)
    if tier.name in (boards or {}):
        return boards[tier.name](_library(artifact, tier), tier)
    if tier.runtime_device == "cpu" and tier.elf_machine == HOST_MACHINE:
        return TvmRunner(_library(artifact, tier), "cpu")
    if tier.runtime_device == "cuda" and cuda_available():
        return TvmRunner(_library(artifact, tier), "cuda")
    emulator = emulators.get(tier.elf_machine) if tier.runtime_device == "cpu" else None
    if emulator is not None:
        return emulator(_library(artifact, tier), tier.name)
    library = with_article(tier.preset)
    return _loaded(lambda: OrtRunner(submodel, f"onnxruntime stand-in: {library} library cannot run here "
                                               f"({tier.verification})", native=False), submodel, tier)


def reference_runner(build_dir: Path, tier: BuiltTier) -> OrtRunner:
    """The tier's sub-model (its precisions applied) in onnxruntime: what the tier computes, by the
    reference implementation, for measuring what the build's lossy choices cost."""
    submodel = manifest.checked_submodel(build_dir, tier)
    return _loaded(lambda: OrtRunner(submodel, "onnxruntime on the tier's sub-model (reference)", native=False),
                   submodel, tier)


def _library(artifact: Path, tier: BuiltTier) -> Path:
    """The tier's library, refused unless it is an ELF library for the machine the manifest names
    (before TVM's loader or qemu chokes on it)."""
    found = elf.machine(artifact)
    if found != tier.elf_machine:
        raise BadInputError(f"{artifact}: tier '{tier.name}' artifact is "
                            f"{'an ELF library for ' + found if found else 'not an ELF library'}, but the manifest "
                            f"says {tier.elf_machine}")
    return artifact


def _loaded(make, path: Path, tier: BuiltTier):
    """A runner over a file onnxruntime must parse: one it cannot is a broken build (bad input)."""
    try:
        return make()
    except Exception as exc:  # onnxruntime's own error types; the file is not a model it can load
        first = first_line(exc)
        raise BadInputError(f"{path}: tier '{tier.name}' cannot be loaded by onnxruntime ({first})") from None
