"""The native kernels CPU tiers link: edgepart's C kernels (native/*.c) with Debian's static
OpenBLAS (libopenblas-serial-dev, and its :arm64 build for aarch64 tiers; `make system-deps`).

Nothing here imports TVM: the parent process finds the library for a target (`find`), the TVM
worker compiles against it (`link`). The tier library needs nothing at run time beyond libc and
TVM's runtime: OpenBLAS goes into it statically, its symbols made local so they cannot clash with
another BLAS in the same process (numpy's, torch's).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from edgepart.cache import cache_dir

NATIVE = Path(str(resources.files("edgepart.toolchain") / "native"))
C_SOURCES = ("kernels.c", "winograd.c", "gemm.c")
KERNEL_SOURCES = (*C_SOURCES, "kernels.h")
# The functions of the C sources that the per-model wrappers call; every other symbol is made local.
KERNEL_ENTRY_POINTS = ("ep_conv2d_nchw", "ep_conv2d_winograd", "ep_conv2d_packed", "ep_matmul")
# Loop kernels are vectorised by gcc only when floating-point exceptions and errno may be ignored
# (the SiLU epilogue's polynomial exp); results do not change.
C_FLAGS = ("-O3", "-fPIC", "-std=gnu11", "-fno-trapping-math", "-fno-math-errno")

# ELF machine of the target -> (Debian multiarch triplet, tool prefix). armv7 has none: Debian's
# armhf OpenBLAS is not part of the install, so armv7 tiers keep TVM's own kernels.
ARCHES = {"x86-64": ("x86_64-linux-gnu", ""), "AArch64": ("aarch64-linux-gnu", "aarch64-linux-gnu-")}


@dataclass(frozen=True)
class KernelLibrary:
    """Where one architecture's kernel library and its tools are. Paths are absolute."""

    triplet: str
    cc: str
    ld: str
    objcopy: str
    archive: str  # OpenBLAS's static library (libopenblas.a)
    include: str  # the folder with its cblas.h
    version: str  # OpenBLAS's own, e.g. "0.3.21"

    @property
    def name(self) -> str:
        return f"openblas-static {self.version}"

    def to_spec(self) -> dict:
        return asdict(self)


def find(elf_machine: str) -> tuple[KernelLibrary | None, str]:
    """The kernel library for a target's ELF machine, or None and the reason there is none."""
    if elf_machine not in ARCHES:
        return None, f"no OpenBLAS static library is set up for {elf_machine or 'this target'}"
    triplet, prefix = ARCHES[elf_machine]
    archive = Path("/usr/lib") / triplet / "openblas-serial" / "libopenblas.a"
    include = Path("/usr/include") / triplet / "openblas-serial"
    if not archive.is_file() or not (include / "cblas.h").is_file():
        package = "libopenblas-serial-dev" + (":arm64" if elf_machine == "AArch64" else "")
        return None, f"{archive} is missing (Debian: {package}; `make system-deps`)"
    tools = {tool: shutil.which(prefix + tool) for tool in ("gcc", "ld", "objcopy")}
    if None in tools.values():
        missing = ", ".join(prefix + tool for tool, path in tools.items() if path is None)
        return None, f"{missing} not installed (`make system-deps`)"
    return KernelLibrary(triplet, tools["gcc"], tools["ld"], tools["objcopy"], str(archive), str(include),
                         _openblas_version(include)), ""


def link(library: KernelLibrary, wrappers: str, symbols: list[str], include_dirs: list[str], workdir: Path) -> Path:
    """One relocatable object: the wrapper source compiled, with the cached kernels + OpenBLAS object;
    only `symbols` stay global."""
    source, wrapped = workdir / "wrappers.c", workdir / "wrappers.o"
    source.write_text(wrappers)
    includes = [f"-I{folder}" for folder in (NATIVE, *include_dirs)]
    _run([library.cc, *C_FLAGS, *includes, "-c", str(source), "-o", str(wrapped)])
    combined = workdir / "edgepart_kernels.o"
    _run([library.ld, "-r", "-o", str(combined), str(wrapped), str(runtime_object(library))])
    keep = workdir / "keep.txt"
    keep.write_text("".join(f"{symbol}\n" for symbol in symbols))
    _run([library.objcopy, f"--keep-global-symbols={keep}", str(combined)])
    return combined


def runtime_object(library: KernelLibrary) -> Path:
    """The C sources and the OpenBLAS members they need, partially linked, cached per source and
    library: `ld -r` pulls only those members out of the archive (56 MB), taking about 2 s, once."""
    key = hashlib.sha256(repr((library.to_spec(), os.path.getsize(library.archive), C_FLAGS,
                               [(NATIVE / name).read_text() for name in KERNEL_SOURCES])).encode()).hexdigest()[:16]
    path = cache_dir() / "cpu-kernels" / f"{library.triplet}-{key}.o"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        objects = [str(Path(tmp) / name.replace(".c", ".o")) for name in C_SOURCES]
        for name, obj in zip(C_SOURCES, objects):
            _run([library.cc, *C_FLAGS, f"-I{NATIVE}", f"-I{library.include}", "-c", str(NATIVE / name), "-o", obj])
        combined = Path(tmp) / "runtime.o"
        _run([library.ld, "-r", "-o", str(combined), *objects, library.archive])
        _run([library.objcopy, "--strip-debug", *(f"--keep-global-symbol={s}" for s in KERNEL_ENTRY_POINTS),
              str(combined)])
        os.replace(combined, path)  # atomic: a concurrent compile sees the old state or the whole object
    return path


def _openblas_version(include: Path) -> str:
    found = re.search(r'OPENBLAS_VERSION\s+"\s*OpenBLAS\s+([\w.]+)', (include / "openblas_config.h").read_text())
    return found.group(1) if found else "unknown"


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed: {result.stderr.strip()[-1500:]}")
