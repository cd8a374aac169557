"""Which convolutions run as Winograd F(4x4, 3x3) (native/winograd.c), and their weights transformed
at compile time.

A 3x3 stride-1 convolution needs 36 multiplications per 4x4 output tile and channel pair instead
of 144; the input and output transforms and 36 small matrix products give part of that back. On
this host (AMD EPYC, AVX-512, one thread, OpenBLAS), against im2col + sgemm, ResNet's 3x3 layers:
64 channels at 56x56 1.8x faster, 128 at 28x28 2.0-2.5x, 256 at 14x14 1.2x, 512 at 7x7 0.6x
(four tiles: the products are too thin, and the transformed weights, four times the originals,
are read from memory each call); a few channels or a small image lose too. `eligible` keeps the
shapes that won. Outputs differ from the direct convolution by about 1e-5 of their magnitude.
"""

from __future__ import annotations

import numpy as np

TILE = 4
MIN_CHANNELS = 32  # input and output channels
MIN_TILES = 16  # 4x4 output tiles per image (a 14x14 output has 16)
MAX_WEIGHT_BYTES = 16 << 20  # transformed weights (36 x O x C floats) read every call

# G of F(4x4, 3x3): the weight transform U = G g G^T (Lavin and Gray, 2016).
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


def eligible(channels: int, outputs: int, kernel: tuple[int, int], strides: tuple[int, int],
             dilation: tuple[int, int], groups: int, output_hw: tuple[int, int]) -> bool:
    """Whether a convolution of these attributes runs faster as Winograd F(4x4, 3x3) here."""
    tiles = -(-output_hw[0] // TILE) * -(-output_hw[1] // TILE)
    return (tuple(kernel) == (3, 3) and tuple(strides) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1
            and min(channels, outputs) >= MIN_CHANNELS and tiles >= MIN_TILES
            and 36 * channels * outputs * 4 <= MAX_WEIGHT_BYTES)


def transform(weights: np.ndarray) -> np.ndarray:
    """OIHW 3x3 float32 weights -> the 36 x O x I float32 array winograd.c reads (computed in float64)."""
    out_channels, in_channels = weights.shape[:2]
    u = np.einsum("ia,ocab,jb->ijoc", G, weights.astype(np.float64), G)
    return np.ascontiguousarray(u.reshape(36, out_channels, in_channels), dtype=np.float32)
