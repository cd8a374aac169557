"""An AArch64 board on this x86 host: TVM's RPC server under qemu-user, for farm benchmarks.

`python -m bench.emulated_board FOLDER` builds (once) an arm64 Debian root filesystem with Python
3.11 and the aarch64 wheels of this venv's TVM release, runtime only (../shared/TVM.md section 16);
`start(...)` runs `tvm.exec.rpc_server` in it under qemu-aarch64-static, registered with a tracker.
A real aarch64 runtime loading real aarch64 libraries, so tuning for an ARM target on it goes the way
it goes on a board: candidates cross-linked here, uploaded, loaded and timed there. Emulated
timings say nothing about ARM speed; what the benchmark takes from it is the farm's mechanics and
wall time with boards that are slower than the tuner, as real ones are.

Needs mmdebstrap and arch-test (Debian), qemu-user-static, and Debian's and PyPI's registries once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
PYTHON = "usr/bin/python3.11"
WHEELS = ("numpy", "ml_dtypes", "psutil", "cloudpickle", "typing_extensions")
# The server's worker processes start from sys.executable: an aarch64 binary the kernel cannot exec
# without binfmt_misc (privileged), so it is pointed at a script that starts them under qemu too.
LAUNCHER = """import runpy, sys
sys.executable = {wrapper!r}
sys.argv = ["rpc_server", *sys.argv[1:]]
runpy.run_module("tvm.exec.rpc_server", run_name="__main__")
"""


def qemu() -> str:
    found = shutil.which("qemu-aarch64-static")
    if not found:
        raise RuntimeError("qemu-aarch64-static is not installed (Debian: qemu-user-static)")
    return found


def build(folder: Path) -> Path:
    """The board's root filesystem under `folder` (reused when it was built for this TVM release)."""
    tvm, ffi = version("apache-tvm"), version("apache-tvm-ffi")
    root = folder / f"rootfs-tvm{tvm}-ffi{ffi}"
    if (root / "opt" / "board_server.py").is_file():
        return root
    if not shutil.which("mmdebstrap"):
        raise RuntimeError("mmdebstrap is not installed (Debian: mmdebstrap arch-test)")
    shutil.rmtree(root, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mmdebstrap", "--quiet", "--arch=arm64", "--variant=extract", "--include=python3.11,libstdc++6",
                    SUITE, str(root), MIRROR], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(root / "opt" / "board"),
                    "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64",
                    "--python-version", "3.11", "--only-binary=:all:", f"apache-tvm=={tvm}",
                    f"apache-tvm-ffi=={ffi}", *WHEELS], check=True)
    for library in ("libtvm_compiler.so", "libtvm_runtime_cuda.so"):  # a board runs TVM's runtime alone
        (root / "opt" / "board" / "tvm" / "lib" / library).unlink(missing_ok=True)
    wrapper = root / "opt" / "python.sh"
    wrapper.write_text(f'#!/bin/sh\nexec {qemu()} -L {root} {root / PYTHON} "$@"\n')
    wrapper.chmod(0o755)
    (root / "opt" / "board_server.py").write_text(LAUNCHER.format(wrapper=str(wrapper)))
    return root


def start(root: Path, tracker: str, key: str, port: int) -> subprocess.Popen:
    """An RPC server on 127.0.0.1:`port` in the board's filesystem, registered with `tracker` under
    `key`; one thread, as a single-core board (the benchmark's boards share this host's cores)."""
    env = {**os.environ, "TVM_USE_RUNTIME_LIB": "1", "TVM_NUM_THREADS": "1", "PYTHONPATH": str(root / "opt" / "board")}
    return subprocess.Popen([str(root / "opt" / "python.sh"), str(root / "opt" / "board_server.py"), "--host",
                             "127.0.0.1", "--port", str(port), "--port-end", str(port + 1), "--tracker", tracker,
                             "--key", key], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/arm-board").resolve()))
