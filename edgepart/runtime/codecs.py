"""Encodings of tensors crossing a link, applied by the runtime at tier boundaries."""

from __future__ import annotations

import numpy as np


def roundtrip(array: np.ndarray, codec: str) -> np.ndarray:
    """What the receiving tier gets after `codec` encodes and decodes `array`."""
    return decode(*encode(array, codec))


def encode(array: np.ndarray, codec: str) -> tuple[bytes, dict]:
    meta = {"codec": codec, "dtype": array.dtype.name, "shape": list(array.shape)}
    if codec == "raw" or array.dtype.kind != "f":
        return np.ascontiguousarray(array).tobytes(), {**meta, "codec": "raw"}
    if codec == "fp16":
        return array.astype(np.float16).tobytes(), meta
    if codec == "int8":
        low, high = float(array.min()), float(array.max())
        scale = (high - low) / 255 if high > low else 1.0
        zero = round(-low / scale) - 128
        quantised = np.clip(np.round(array / scale) + zero, -128, 127).astype(np.int8)
        return quantised.tobytes(), {**meta, "scale": scale, "zero_point": zero}
    raise ValueError(f"unknown codec {codec!r}")


def decode(payload: bytes, meta: dict) -> np.ndarray:
    shape, dtype = tuple(meta["shape"]), np.dtype(meta["dtype"])
    if meta["codec"] == "raw":
        return np.frombuffer(payload, dtype=dtype).reshape(shape).copy()
    if meta["codec"] == "fp16":
        return np.frombuffer(payload, dtype=np.float16).reshape(shape).astype(dtype)
    values = np.frombuffer(payload, dtype=np.int8).reshape(shape).astype(np.float32)
    return ((values - meta["zero_point"]) * meta["scale"]).astype(dtype)
