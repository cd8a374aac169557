"""What compression costs, as the cost model reads it from a sensitivity document."""

from __future__ import annotations

from edgepart.compress import codecs
from edgepart.cost.build import Compression


def from_sensitivity(doc: dict) -> Compression:
    """The planner's view of a sensitivity document (edgepart.compress.sensitivity)."""
    drop: dict[tuple[str, str], float] = {}
    wire: dict[tuple[str, str], float] = {}
    seconds: dict[tuple[str, str], tuple[float, float]] = {}
    fp32_only = set()
    for name, entry in doc["layers"].items():
        for precision, result in entry.items():
            drop[(name, precision)] = result["drop"]
            if precision == "int8" and not result.get("applies", True):
                fp32_only.add(name)
    for name, entry in doc["tensors"].items():
        for codec, result in entry["codecs"].items():
            if "drop" in result:
                drop[(f"tensor:{name}", codec)] = result["drop"]
            if codecs.entropy_coded(codec):
                wire[(name, codec)] = result["bytes"]
            if codec != "raw":  # the transport sends raw buffers as they are
                seconds[(name, codec)] = (result["encode_s"], result["decode_s"])
    return Compression(drop, wire, seconds, doc["host"]["memory_bandwidth_bps"], frozenset(fp32_only))
