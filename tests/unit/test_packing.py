"""Weights packed for native/gemm.c, and which targets get packed kernels."""

from __future__ import annotations

import numpy as np
import pytest

from edgepart.toolchain import packing, targets


def test_panels_follow_the_layout_kernels_h_documents():
    """packed[(p * K + k) * 8 + i] = w[p * 8 + i][k]; rows past M are zeros."""
    weights = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    packed = packing.panels(weights)
    assert packed.shape == (2 * 3 * packing.PANEL_ROWS,) and packed.dtype == np.float32
    for p, k, i in [(0, 0, 0), (0, 2, 7), (1, 1, 1), (1, 0, 0)]:
        assert packed[(p * 3 + k) * packing.PANEL_ROWS + i] == weights[p * packing.PANEL_ROWS + i, k]
    assert not packed.reshape(2, 3, packing.PANEL_ROWS)[1, :, 2:].any()


def test_panel_rows_match_the_c_header():
    header = (packing.__file__.rsplit("/", 1)[0] + "/native/kernels.h")
    assert f"#define EP_PANEL_ROWS {packing.PANEL_ROWS}" in open(header).read()


@pytest.mark.parametrize(("preset", "packed"), [("x86-64-v4", True), ("x86-64-v3", False), ("x86-64", False),
                                                ("rpi4", False), ("aarch64", False), ("cuda-sm90", False)])
def test_only_avx512_targets_get_packed_kernels(preset, packed):
    assert packing.has_avx512(targets.resolve(preset).target) is packed


def test_a_custom_target_with_avx512_attributes_is_packed():
    assert packing.has_avx512({"kind": "llvm", "mcpu": "znver4"})
    assert packing.has_avx512({"kind": "llvm", "mcpu": "generic", "mattr": ["+avx512f"]})
    assert not packing.has_avx512({"kind": "llvm", "mcpu": "haswell", "mattr": ["+avx2"]})
