"""Run AArch64 tier libraries on this x86 host under qemu-user, with TVM's real aarch64 runtime.

The bundle (built once and cached, `make arm-runtime`): libtvm_runtime.so and libtvm_ffi.so taken
from the aarch64 wheels of the same TVM release, and run_tier.cc cross-compiled against the
tvm-ffi headers. Runs are for correctness only: emulated timings say nothing about ARM speed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import resources
from importlib.metadata import version
from pathlib import Path

import numpy as np

from edgepart.cache import cache_dir
from edgepart.errors import ToolError

CROSS_CXX = "aarch64-linux-gnu-g++"
SYSROOT = "/usr/aarch64-linux-gnu"
RUNNER_SOURCE = Path(str(resources.files("edgepart.runtime") / "native" / "run_tier.cc"))
WHEEL_LIBRARIES = {"apache-tvm": "tvm/lib/libtvm_runtime.so", "apache-tvm-ffi": "tvm_ffi/lib/libtvm_ffi.so"}


def qemu() -> str | None:
    return shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")


def available() -> dict:
    """{ELF machine: runner factory} for the emulators this host can use."""
    if qemu() is None or shutil.which(CROSS_CXX) is None or not Path(SYSROOT).is_dir():
        return {}
    return {"AArch64": QemuRunner}


def bundle() -> Path:
    """Folder with run_tier and the aarch64 runtime libraries; built on first use."""
    versions = {package: version(package) for package in WHEEL_LIBRARIES}
    key = hashlib.sha256((repr(sorted(versions.items())) + RUNNER_SOURCE.read_text()).encode()).hexdigest()[:16]
    folder = cache_dir() / "aarch64-runtime" / key
    if (folder / "run_tier").is_file():
        return folder
    staging = Path(tempfile.mkdtemp(prefix=".aarch64-", dir=cache_dir(create=True)))
    try:
        _fetch_libraries(versions, staging)
        _build_runner(staging)
        folder.parent.mkdir(parents=True, exist_ok=True)
        if not folder.exists():
            os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _fetch_libraries(versions: dict[str, str], into: Path) -> None:
    wheels = into / "wheels"
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--platform", "manylinux_2_28_aarch64", "--python-version", "3.11", "-d", str(wheels),
               *(f"{package}=={v}" for package, v in versions.items())]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolError(f"downloading TVM's aarch64 runtime failed: {result.stderr.strip().splitlines()[-1:]}")
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            for member in WHEEL_LIBRARIES.values():
                if member in archive.namelist():
                    (into / Path(member).name).write_bytes(archive.read(member))
    shutil.rmtree(wheels)


def _build_runner(folder: Path) -> None:
    import tvm_ffi  # noqa: PLC0415 - only its header folder is needed

    include = Path(tvm_ffi.__file__).parent / "include"
    command = [CROSS_CXX, "-std=c++17", "-O2", str(RUNNER_SOURCE), f"-I{include}", f"-L{folder}",
               "-ltvm_ffi", "-ltvm_runtime", "-Wl,-rpath,$ORIGIN", "-o", str(folder / "run_tier")]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolError(f"cross-compiling the aarch64 tier runner failed: {result.stderr.strip()[:400]}")


class QemuRunner:
    """Runs one tier library under qemu-aarch64; `run` maps numpy inputs to numpy outputs."""

    def __init__(self, library: Path, tier: str, timeout_s: float = 600) -> None:
        self.library, self.tier, self.timeout_s = library, tier, timeout_s  # tier: its name, for errors
        self.folder = bundle()
        self.description = f"tvm runtime (aarch64) under {Path(qemu()).name}"
        self.native = False  # emulated: right numbers, not the board's speed

    def run(self, values: list[np.ndarray]) -> list[np.ndarray]:
        return self.run_many([values])[0]

    def run_many(self, samples: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        """All samples in one emulated process: qemu and the runtime start once."""
        with tempfile.TemporaryDirectory() as tmp:
            specs = []
            for i, first in enumerate(samples[0]):
                path = Path(tmp) / f"in{i}.bin"
                with path.open("wb") as stream:
                    for values in samples:
                        stream.write(np.ascontiguousarray(values[i]).tobytes())
                specs.append(f"{path}:{first.dtype.name}:{'x'.join(map(str, first.shape)) or '1'}")
            command = [qemu(), "-L", SYSROOT, str(self.folder / "run_tier"), "-n", str(len(samples)),
                       str(self.library), str(Path(tmp) / "out"), *specs]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                raise ToolError(f"tier '{self.tier}' did not finish under qemu "
                                f"in {self.timeout_s:g} s") from None
            if result.returncode != 0:
                raise ToolError(f"tier '{self.tier}' failed under qemu: {result.stderr.strip()[-300:]}")
            outputs = []
            for line in result.stdout.strip().splitlines():
                index, dtype, dims = line.split()
                shape = tuple(int(d) for d in dims.split("x")) if dims else ()
                outputs.append(np.fromfile(Path(tmp) / f"out.{index}.bin", dtype=dtype).reshape(len(samples), *shape))
            return [[output[n] for output in outputs] for n in range(len(samples))]
