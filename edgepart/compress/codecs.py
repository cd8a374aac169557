"""Encodings of tensors crossing a link, applied by the runtime at tier boundaries.

- fp16: half precision.
- int8: 8-bit affine quantisation with a scale and zero point computed per tensor, per call, exactly
  as ONNX DynamicQuantizeLinear does (uint8, range stretched to include 0), so the accuracy cost can
  be measured in-graph (edgepart.compress.sensitivity) and matches what the runtime does. A tensor
  holding inf or NaN (a transformer's additive attention mask) is sent raw instead: an affine uint8
  code cannot hold them. The header says which, so the receiver needs no notice.
- `+zlib`: lossless DEFLATE (Python's zlib, level 1: fast) on top of the bytes; `zlib` alone on raw.
"""

from __future__ import annotations

import zlib

import numpy as np

CODECS = ("raw", "fp16", "int8", "zlib", "fp16+zlib", "int8+zlib")
PRECISIONS = ("fp32", "fp16", "int8")  # what a layer may run in
HEADER_BYTES = {"raw": 0, "fp16": 0, "int8": 5}  # int8: float32 scale + uint8 zero point
ZLIB_LEVEL = 1


def base(codec: str) -> str:
    """The lossy part of a codec name: 'int8+zlib' -> 'int8', 'zlib' -> 'raw'."""
    if codec == "zlib":
        return "raw"
    return codec.removesuffix("+zlib")


def entropy_coded(codec: str) -> bool:
    return codec == "zlib" or codec.endswith("+zlib")


def roundtrip(array: np.ndarray, codec: str) -> np.ndarray:
    """What the receiving tier gets after `codec` encodes and decodes `array`."""
    return decode(*encode(array, codec))


def encode(array: np.ndarray, codec: str) -> tuple[bytes, dict]:
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}")
    lossy = base(codec) if array.dtype.kind == "f" else "raw"  # codecs only shrink float tensors
    if lossy == "int8" and not np.isfinite(array).all():
        lossy = "raw"
    meta = {"codec": lossy, "dtype": array.dtype.name, "shape": list(array.shape)}
    if lossy == "raw":
        payload = np.ascontiguousarray(array).tobytes()
    elif lossy == "fp16":
        payload = array.astype(np.float16).tobytes()
    else:
        quantised, scale, zero = quantize_uint8(array)
        payload = quantised.tobytes()
        meta.update(scale=scale, zero_point=zero)
    if entropy_coded(codec):
        payload = zlib.compress(payload, ZLIB_LEVEL)
        meta["zlib"] = True
    return payload, meta


def decode(payload: bytes, meta: dict) -> np.ndarray:
    if meta.get("zlib"):
        payload = zlib.decompress(payload)
    shape, dtype = tuple(meta["shape"]), np.dtype(meta["dtype"])
    if meta["codec"] == "raw":
        return np.frombuffer(payload, dtype=dtype).reshape(shape).copy()
    if meta["codec"] == "fp16":
        return np.frombuffer(payload, dtype=np.float16).reshape(shape).astype(dtype)
    values = np.frombuffer(payload, dtype=np.uint8).reshape(shape).astype(np.float32)
    return ((values - np.float32(meta["zero_point"])) * np.float32(meta["scale"])).astype(dtype)


def quantize_uint8(array: np.ndarray) -> tuple[np.ndarray, float, int]:
    """ONNX DynamicQuantizeLinear: scale = (max(x, 0) - min(x, 0)) / 255, rounding half to even."""
    x = array.astype(np.float32, copy=False)
    low, high = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = np.float32((high - low) / 255) if high > low else np.float32(1.0)
    zero = int(np.clip(np.round(np.float32(-low) / scale), 0, 255))
    quantised = np.clip(np.round(x / scale) + zero, 0, 255).astype(np.uint8)
    return quantised, float(scale), zero
