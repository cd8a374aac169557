"""Weights packed at compile time for native/gemm.c's micro-kernels, and which targets get them.

A constant M x K weight matrix becomes ceil(M / PANEL_ROWS) panels; panel p holds rows
p*PANEL_ROWS.. as K columns of PANEL_ROWS adjacent floats (rows past M are zeros), so the kernel
reads one column of a panel as one vector and never repacks the weights per call. PANEL_ROWS must
equal EP_PANEL_ROWS in native/kernels.h.

Only targets with AVX-512 get packed kernels: the micro-kernel is AVX-512 code, and everywhere
else (aarch64, AVX2 x86) OpenBLAS's own kernels are faster than gemm.c's portable loops.
"""

from __future__ import annotations

import numpy as np

PANEL_ROWS = 8
# LLVM CPU names with AVX-512F (-mcpu of a target dict); a target's "+avx512f" attribute counts too.
AVX512_CPUS = frozenset({
    "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client", "icelake-server",
    "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids", "graniterapids", "graniterapids-d",
    "knl", "knm", "znver4", "znver5", "x86-64-v4",
})


def has_avx512(target: dict) -> bool:
    """Whether a TVM target dict (an llvm kind) promises AVX-512F."""
    attributes = target.get("mattr") or []
    return target.get("kind") == "llvm" and (target.get("mcpu") in AVX512_CPUS or "+avx512f" in attributes)


def panels(matrix: np.ndarray) -> np.ndarray:
    """An M x K float32 matrix -> its packed panels, flat."""
    rows, depth = matrix.shape
    count = -(-rows // PANEL_ROWS)
    padded = np.zeros((count * PANEL_ROWS, depth), dtype=np.float32)
    padded[:rows] = matrix
    return np.ascontiguousarray(padded.reshape(count, PANEL_ROWS, depth).transpose(0, 2, 1)).reshape(-1)
