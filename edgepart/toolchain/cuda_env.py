"""Build-host environment that makes TVM embed compiled CUDA device code (a fatbin) in its libraries.

Without an NVIDIA driver, TVM's CUDA runtime library cannot load (it needs libcuda.so.1), and its
codegen falls back to storing CUDA source that is compiled when the library is loaded, which
needs nvcc or NVRTC on the device. A stand-in libcuda.so.1 whose nine entry points report
"no device" lets the runtime library load; with TVM_CUDA_COMPILE_MODE=nvcc the codegen then runs
nvcc at build time and the exported library carries the fatbin (docs/targets.md).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from edgepart.cache import cache_dir
from edgepart.errors import ToolError

_STUB_SOURCE = """\
/* Stand-in for the NVIDIA driver on a build host without a GPU: every call reports no device. */
#define CUDA_ERROR_NO_DEVICE 100
int cuDeviceGetName(void) { return CUDA_ERROR_NO_DEVICE; }
int cuFuncSetAttribute(void) { return CUDA_ERROR_NO_DEVICE; }
int cuGetErrorName(int e, const char **s) { if (s) *s = "CUDA_ERROR_NO_DEVICE"; return 0; }
int cuGetErrorString(int e, const char **s) { if (s) *s = "no CUDA device (edgepart build stub)"; return 0; }
int cuLaunchKernelEx(void) { return CUDA_ERROR_NO_DEVICE; }
int cuModuleGetFunction(void) { return CUDA_ERROR_NO_DEVICE; }
int cuModuleLoadData(void) { return CUDA_ERROR_NO_DEVICE; }
int cuModuleUnload(void) { return CUDA_ERROR_NO_DEVICE; }
int cuTensorMapEncodeTiled(void) { return CUDA_ERROR_NO_DEVICE; }
"""

FATBIN_MAGIC = bytes.fromhex("50ed55ba")


def cuda_home() -> Path:
    """The CUDA toolkit: $CUDA_PATH, else the folder of the real nvcc (not a wrapper script)."""
    if os.environ.get("CUDA_PATH"):
        return Path(os.environ["CUDA_PATH"])
    for candidate in (Path("/usr/local/cuda"), *sorted(Path("/usr/local").glob("cuda-*"), reverse=True)):
        if (candidate / "bin" / "nvcc").is_file():
            return candidate
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise ToolError("CUDA targets need nvcc (the CUDA toolkit) on the build host; set CUDA_PATH")
    return Path(nvcc).resolve().parent.parent


def driver_stub(cc: str = "gcc") -> Path:
    """Folder holding the stand-in libcuda.so.1, built once per source version."""
    folder = cache_dir() / "cuda-stub" / hashlib.sha256(_STUB_SOURCE.encode()).hexdigest()[:16]
    library = folder / "libcuda.so.1"
    if not library.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / "stub.c"
        source.write_text(_STUB_SOURCE)
        tmp = folder / f".libcuda.{os.getpid()}.so"
        result = subprocess.run([cc, "-shared", "-fPIC", "-o", str(tmp), str(source)], capture_output=True, text=True)
        if result.returncode != 0:
            raise ToolError(f"building the CUDA driver stub with {cc} failed: {result.stderr.strip()[:300]}")
        os.replace(tmp, library)
    return folder


def has_system_driver() -> bool:
    return any(Path(p).exists() for p in ("/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1",
                                          "/usr/local/nvidia/lib64/libcuda.so.1"))


def build_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a TVM compile process that must embed CUDA device code."""
    env = dict(os.environ if base is None else base)
    home = cuda_home()
    libraries = [str(home / "lib64")]
    if not has_system_driver():
        libraries.insert(0, str(driver_stub()))
    env["LD_LIBRARY_PATH"] = ":".join([*libraries, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    env["CUDA_PATH"] = str(home)
    env["TVM_CUDA_COMPILE_MODE"] = "nvcc"
    env["PATH"] = f"{home / 'bin'}:{env.get('PATH', '')}"
    return env


def cuda_available() -> bool:
    """An NVIDIA driver that loads and a GPU device node."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return Path("/dev/nvidia0").exists()
